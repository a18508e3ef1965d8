{{/*
The environment every service shares, built from the common values of the calling chart:

  kafka.bootstrap      -> PARLEY_KAFKA_BOOTSTRAP        (required)
  kafka.topicPrefix    -> PARLEY_KAFKA_TOPIC_PREFIX
  otel.exporter        -> PARLEY_OTEL_EXPORTER          (none | otlp | console)
  otel.endpoint        -> OTEL_EXPORTER_OTLP_ENDPOINT   (only when set)
  logging.format       -> PARLEY_LOG_FORMAT             (json | console)
  logging.level        -> PARLEY_LOG_LEVEL
  extraCommonEnv       -> any further NAME: value pairs

Rendered as ConfigMap data (every value a string).
Usage: data: {{- include "parley-lib.commonEnv" $ | nindent 2 }}
*/}}
{{- define "parley-lib.commonEnv" -}}
{{- $kafka := .Values.kafka | default dict -}}
{{- $otel := .Values.otel | default dict -}}
{{- $logging := .Values.logging | default dict -}}
{{- $exporter := $otel.exporter | default "none" -}}
{{- if not (has $exporter (list "none" "otlp" "console")) -}}
{{- fail (printf "otel.exporter must be one of none, otlp, console (got %q)" $exporter) -}}
{{- end -}}
{{- $format := $logging.format | default "json" -}}
{{- if not (has $format (list "json" "console")) -}}
{{- fail (printf "logging.format must be one of json, console (got %q)" $format) -}}
{{- end -}}
{{- $env := dict
      "PARLEY_KAFKA_BOOTSTRAP" (required "kafka.bootstrap is required (host:port of the Kafka brokers)" $kafka.bootstrap)
      "PARLEY_KAFKA_TOPIC_PREFIX" (ternary $kafka.topicPrefix "parley." (hasKey $kafka "topicPrefix"))
      "PARLEY_OTEL_EXPORTER" $exporter
      "PARLEY_LOG_FORMAT" $format
      "PARLEY_LOG_LEVEL" ($logging.level | default "INFO")
-}}
{{- with $otel.endpoint }}
{{- $_ := set $env "OTEL_EXPORTER_OTLP_ENDPOINT" . -}}
{{- end }}
{{- range $name, $value := .Values.extraCommonEnv }}
{{- $_ := set $env $name $value -}}
{{- end }}
{{- range $name := keys $env | sortAlpha }}
{{ $name }}: {{ get $env $name | toString | quote }}
{{- end }}
{{- end -}}

{{/*
The ConfigMap holding the common environment; the Deployments load it with envFrom.
Usage: {{ include "parley-lib.configMap" $ }}
*/}}
{{- define "parley-lib.configMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "parley-lib.commonEnvName" . }}
  namespace: {{ include "parley-lib.namespace" . }}
  labels:
    {{- include "parley-lib.labels" (dict "root" .) | nindent 4 }}
  {{- with (include "parley-lib.annotations" (dict "root" .)) }}
  annotations:
    {{- . | nindent 4 }}
  {{- end }}
data:
  {{- include "parley-lib.commonEnv" . | trim | nindent 2 }}
{{- end -}}

{{/*
A checksum of the common environment, as a pod annotation, so a changed ConfigMap rolls the pods.
Usage: checksum/env: {{ include "parley-lib.commonEnvChecksum" $ }}
*/}}
{{- define "parley-lib.commonEnvChecksum" -}}
{{- include "parley-lib.commonEnv" . | sha256sum -}}
{{- end -}}
