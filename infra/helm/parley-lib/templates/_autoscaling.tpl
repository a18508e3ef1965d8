{{/*
An autoscaling/v2 HorizontalPodAutoscaler for one service's Deployment. The CPU/memory targets are
percentages of the container's resource *requests*, so set resources.requests when you enable it.

Arguments (a dict): root, component, values.
Values read from the service block: autoscaling.minReplicas, autoscaling.maxReplicas,
autoscaling.targetCPUUtilizationPercentage, autoscaling.targetMemoryUtilizationPercentage,
autoscaling.metrics (extra MetricSpecs), autoscaling.behavior.
Usage: {{ include "parley-lib.hpa" (dict "root" $ "component" "nlu" "values" .Values.nlu) }}
*/}}
{{- define "parley-lib.hpa" -}}
{{- $root := .root -}}
{{- $as := .values.autoscaling -}}
{{- $ctx := dict "root" $root "component" .component -}}
{{- $min := int ($as.minReplicas | default 1) -}}
{{- $max := int (required (printf "%s.autoscaling.maxReplicas is required when autoscaling is enabled" .component) $as.maxReplicas) -}}
{{- if gt $min $max -}}
{{- fail (printf "%s.autoscaling.minReplicas (%d) is greater than maxReplicas (%d)" .component $min $max) -}}
{{- end -}}
{{- if not (or $as.targetCPUUtilizationPercentage $as.targetMemoryUtilizationPercentage $as.metrics) -}}
{{- fail (printf "%s.autoscaling needs targetCPUUtilizationPercentage, targetMemoryUtilizationPercentage or metrics" .component) -}}
{{- end -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "parley-lib.componentFullname" $ctx }}
  namespace: {{ include "parley-lib.namespace" $root }}
  labels:
    {{- include "parley-lib.labels" $ctx | nindent 4 }}
  {{- with (include "parley-lib.annotations" (dict "root" $root)) }}
  annotations:
    {{- . | nindent 4 }}
  {{- end }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "parley-lib.componentFullname" $ctx }}
  minReplicas: {{ $min }}
  maxReplicas: {{ $max }}
  metrics:
    {{- with $as.targetCPUUtilizationPercentage }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
    {{- with $as.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
    {{- with $as.metrics }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $as.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
