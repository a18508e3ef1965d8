{{/*
Helpers of the umbrella chart. Names, labels and the workload templates come from the parley-lib library.
*/}}

{{/*
host:port of the context gRPC service (PARLEY_CONTEXT_ADDRESS): .Values.contextAddress, or this release's
context Service.
Usage: {{ include "parley.contextAddress" $ }}
*/}}
{{- define "parley.contextAddress" -}}
{{- if .Values.contextAddress -}}
{{- .Values.contextAddress -}}
{{- else if .Values.context.enabled -}}
{{- printf "%s:%v" (include "parley-lib.componentFullname" (dict "root" . "component" "context")) .Values.context.service.ports.grpc -}}
{{- else -}}
{{- fail "context.enabled is false: set contextAddress to the host:port of an external context service" -}}
{{- end -}}
{{- end -}}

{{/*
The pod annotations every service gets: a checksum of the common environment, so that `helm upgrade`
with changed settings rolls the pods.
Usage: (include "parley.podAnnotations" $ | fromYaml)
*/}}
{{- define "parley.podAnnotations" -}}
checksum/env: {{ include "parley-lib.commonEnvChecksum" . }}
{{- end -}}

{{/*
The gRPC container port (name grpc) and PARLEY_<NAME>_GRPC_PORT of a service.
Usage: (include "parley.grpcContainerPorts" (dict "values" .Values.nlu) | fromYamlArray)
*/}}
{{- define "parley.grpcContainerPorts" -}}
- name: grpc
  containerPort: {{ .values.containerPorts.grpc }}
  protocol: TCP
{{- end -}}

{{- define "parley.grpcPortEnv" -}}
- name: {{ printf "PARLEY_%s_GRPC_PORT" (upper .component) }}
  value: {{ .values.containerPorts.grpc | toString | quote }}
- name: {{ printf "PARLEY_%s_GRPC_HOST" (upper .component) }}
  value: "0.0.0.0"
{{- if eq .component "gateway" }}
- name: PARLEY_GATEWAY_HTTP_HOST
  value: "0.0.0.0"
{{- end }}
{{- end -}}

{{/*
The gRPC Service port of a service.
Usage: (include "parley.grpcServicePorts" (dict "values" .Values.nlu) | fromYamlArray)
*/}}
{{- define "parley.grpcServicePorts" -}}
- name: grpc
  port: {{ .values.service.ports.grpc }}
  targetPort: grpc
  appProtocol: grpc
  {{- with (.values.service.nodePorts | default dict).grpc }}
  nodePort: {{ . }}
  {{- end }}
{{- end -}}

{{/*
The assistant project (nlu, dialog, generator): PARLEY_PROJECT_DIR, and the ConfigMap volume when
project.existingConfigMap is set.
*/}}
{{- define "parley.projectEnv" -}}
- name: PARLEY_PROJECT_DIR
  value: {{ .Values.project.dir | quote }}
{{- end -}}

{{- define "parley.projectVolumes" -}}
{{- with .Values.project.existingConfigMap }}
- name: project
  configMap:
    name: {{ tpl . $ }}
    {{- with $.Values.project.items }}
    items:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end }}
{{- end -}}

{{- define "parley.projectVolumeMounts" -}}
{{- if .Values.project.existingConfigMap }}
- name: project
  mountPath: {{ .Values.project.dir }}
  readOnly: true
{{- end }}
{{- end -}}
