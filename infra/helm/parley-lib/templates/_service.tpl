{{/*
A Service for one Parley service.

Arguments (a dict): root, component, values, and
  ports   a list of {name, port, targetPort[, appProtocol, nodePort]}

Values read from the service block: service.type, service.annotations, service.labels, service.clusterIP,
service.sessionAffinity, service.loadBalancerSourceRanges, service.externalTrafficPolicy.
Usage: {{ include "parley-lib.service" (dict "root" $ "component" "nlu" "values" .Values.nlu "ports" $ports) }}
*/}}
{{- define "parley-lib.service" -}}
{{- $root := .root -}}
{{- $svc := .values.service | default dict -}}
{{- $ctx := dict "root" $root "component" .component -}}
{{- $type := $svc.type | default "ClusterIP" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "parley-lib.componentFullname" $ctx }}
  namespace: {{ include "parley-lib.namespace" $root }}
  labels:
    {{- include "parley-lib.labels" $ctx | nindent 4 }}
    {{- with $svc.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with (include "parley-lib.annotations" (dict "root" $root "extra" $svc.annotations)) }}
  annotations:
    {{- . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $type }}
  {{- with $svc.clusterIP }}
  clusterIP: {{ . | quote }}
  {{- end }}
  {{- with $svc.sessionAffinity }}
  sessionAffinity: {{ . }}
  {{- end }}
  {{- if and (eq $type "LoadBalancer") $svc.loadBalancerSourceRanges }}
  loadBalancerSourceRanges:
    {{- toYaml $svc.loadBalancerSourceRanges | nindent 4 }}
  {{- end }}
  {{- if and (has $type (list "LoadBalancer" "NodePort")) $svc.externalTrafficPolicy }}
  externalTrafficPolicy: {{ $svc.externalTrafficPolicy }}
  {{- end }}
  ports:
    {{- range .ports }}
    - name: {{ .name }}
      port: {{ .port }}
      targetPort: {{ .targetPort }}
      protocol: {{ .protocol | default "TCP" }}
      {{- with .appProtocol }}
      appProtocol: {{ . }}
      {{- end }}
      {{- if and (has $type (list "LoadBalancer" "NodePort")) .nodePort }}
      nodePort: {{ .nodePort }}
      {{- end }}
    {{- end }}
  selector:
    {{- include "parley-lib.selectorLabels" $ctx | nindent 4 }}
{{- end -}}
