{{/*
A Deployment for one Parley service.

Arguments (a dict):
  root           the top-level context ($)
  component      the service name (nlu, dialog, generator, context, gateway)
  values         the service's values block
  ports          container ports: a list of {name, containerPort[, protocol]}
  env            service-specific env vars (a list of EnvVar objects), before values.extraEnv
  volumes        service-specific volumes, before values.extraVolumes
  volumeMounts   service-specific mounts, before values.extraVolumeMounts
  probes         rendered probes (from parley-lib.grpcProbes or parley-lib.probes)
  podAnnotations extra pod annotations (e.g. config checksums), merged under values.podAnnotations

Values read from the service block: replicaCount, autoscaling.enabled, updateStrategy, image, command, args,
podLabels, podAnnotations, podSecurityContext, containerSecurityContext, resources, nodeSelector,
tolerations, affinity, topologySpreadConstraints, runtimeClassName, priorityClassName,
terminationGracePeriodSeconds, lifecycle, extraEnv, extraEnvFrom, extraVolumes, extraVolumeMounts.
Values read from the root: global, podSecurityContext, containerSecurityContext (defaults the service block
overrides key by key), serviceAccount, revisionHistoryLimit, tmpVolume.

POD_NAME and POD_NAMESPACE come from the downward API (a replica's identity, e.g. for per-replica reply
routing in the gateway). The root filesystem is meant to be read-only: /tmp is always an emptyDir.
Service links are off, so Kubernetes injects no <SERVICE>_PORT variables: for a release "parley" they would
be named PARLEY_CONTEXT_PORT, PARLEY_NLU_SERVICE_HOST, ... and collide with the PARLEY_* settings.
Usage: {{ include "parley-lib.deployment" (dict "root" $ "component" "nlu" "values" .Values.nlu ...) }}
*/}}
{{- define "parley-lib.deployment" -}}
{{- $root := .root -}}
{{- $v := .values -}}
{{- $ctx := dict "root" $root "component" .component -}}
{{- $podSecurityContext := mergeOverwrite (deepCopy ($root.Values.podSecurityContext | default dict)) ($v.podSecurityContext | default dict) -}}
{{- $containerSecurityContext := mergeOverwrite (deepCopy ($root.Values.containerSecurityContext | default dict)) ($v.containerSecurityContext | default dict) -}}
{{- $podAnnotations := mergeOverwrite (deepCopy (.podAnnotations | default dict)) ($v.podAnnotations | default dict) -}}
{{- $tmp := $root.Values.tmpVolume | default dict -}}
{{- $emptyDir := dict -}}
{{- range $key := list "medium" "sizeLimit" }}
{{- with get $tmp $key }}
{{- $_ := set $emptyDir $key . }}
{{- end }}
{{- end }}
{{- $tmpVolume := dict "name" "tmp" "emptyDir" $emptyDir -}}
{{- $volumes := concat (list $tmpVolume) (.volumes | default list) ($v.extraVolumes | default list) -}}
{{- $volumeMounts := concat (list (dict "name" "tmp" "mountPath" "/tmp")) (.volumeMounts | default list) ($v.extraVolumeMounts | default list) -}}
{{- $downward := list
      (dict "name" "POD_NAME" "valueFrom" (dict "fieldRef" (dict "fieldPath" "metadata.name")))
      (dict "name" "POD_NAMESPACE" "valueFrom" (dict "fieldRef" (dict "fieldPath" "metadata.namespace")))
-}}
{{- $env := concat $downward (.env | default list) ($v.extraEnv | default list) -}}
apiVersion: apps/v1
kind: Deployment
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
  {{- if not ($v.autoscaling | default dict).enabled }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  revisionHistoryLimit: {{ $root.Values.revisionHistoryLimit | default 10 }}
  {{- with $v.updateStrategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "parley-lib.selectorLabels" $ctx | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "parley-lib.labels" $ctx | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "parley-lib.serviceAccountName" $root }}
      automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken | default false }}
      enableServiceLinks: false
      {{- with (include "parley-lib.imagePullSecrets" $root | trim) }}
      {{- . | nindent 6 }}
      {{- end }}
      {{- with $v.runtimeClassName }}
      runtimeClassName: {{ . | quote }}
      {{- end }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . | quote }}
      {{- end }}
      {{- with $podSecurityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if hasKey $v "terminationGracePeriodSeconds" }}
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- tpl (toYaml .) $root | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "parley-lib.image" (dict "root" $root "component" .component "values" $v) | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy | default "IfNotPresent" }}
          {{- with $v.command }}
          command:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $v.args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $containerSecurityContext }}
          securityContext:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with .ports }}
          ports:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          envFrom:
            - configMapRef:
                name: {{ include "parley-lib.commonEnvName" $root }}
            {{- with $v.extraEnvFrom }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- with $env }}
          env:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with (.probes | trim) }}
          {{- . | nindent 10 }}
          {{- end }}
          {{- with $v.lifecycle }}
          lifecycle:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $v.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            {{- toYaml $volumeMounts | nindent 12 }}
      volumes:
        {{- toYaml $volumes | nindent 8 }}
{{- end -}}
