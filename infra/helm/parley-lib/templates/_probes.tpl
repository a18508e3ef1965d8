{{/*
Probes. A service's values carry "startupProbe", "livenessProbe" and "readinessProbe" maps with "enabled"
and the timing fields (initialDelaySeconds, periodSeconds, timeoutSeconds, failureThreshold,
successThreshold); the handler (grpc, httpGet, ...) comes from the caller. "customStartupProbe",
"customLivenessProbe" and "customReadinessProbe" replace a probe entirely.
*/}}

{{/*
One probe: the timing fields of .probe plus the handler .handler.
Usage: {{ include "parley-lib.probe" (dict "probe" .Values.nlu.livenessProbe "handler" (dict "grpc" (dict "port" 50051))) }}
*/}}
{{- define "parley-lib.probe" -}}
{{- $probe := omit (.probe | default dict) "enabled" -}}
{{- toYaml (merge (deepCopy .handler) $probe) -}}
{{- end -}}

{{/*
The three probes of a container, each with its own handler.
Usage: {{- include "parley-lib.probes" (dict "values" .Values.gateway "handlers" (dict
          "startupProbe" (dict "httpGet" (dict "path" "/healthz" "port" "http"))
          "livenessProbe" ... "readinessProbe" ...)) | nindent 10 }}
*/}}
{{- define "parley-lib.probes" -}}
{{- range $kind := list "startupProbe" "livenessProbe" "readinessProbe" }}
{{- $custom := get $.values (printf "custom%s" (title $kind)) -}}
{{- $probe := get $.values $kind -}}
{{- if $custom }}
{{ $kind }}:
  {{- toYaml $custom | nindent 2 }}
{{- else if and $probe $probe.enabled }}
{{ $kind }}:
  {{- include "parley-lib.probe" (dict "probe" $probe "handler" (get $.handlers $kind)) | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
The three probes as native gRPC probes (grpc.health.v1) on one port; "service" is the health service name
to ask for ("" = the whole server).
Usage: {{- include "parley-lib.grpcProbes" (dict "values" .Values.nlu "port" 50051) | nindent 10 }}
*/}}
{{- define "parley-lib.grpcProbes" -}}
{{- $grpc := dict "port" (int .port) -}}
{{- with .service }}
{{- $_ := set $grpc "service" . -}}
{{- end }}
{{- $handler := dict "grpc" $grpc -}}
{{- include "parley-lib.probes" (dict "values" .values "handlers" (dict "startupProbe" $handler "livenessProbe" $handler "readinessProbe" $handler)) -}}
{{- end -}}
