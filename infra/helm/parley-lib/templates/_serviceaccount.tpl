{{/*
The ServiceAccount every Parley pod runs as (the services call no Kubernetes API, so no token is mounted
unless serviceAccount.automountServiceAccountToken is true).
Values: serviceAccount.create, serviceAccount.name, serviceAccount.annotations,
serviceAccount.automountServiceAccountToken.
Usage: {{ include "parley-lib.serviceAccount" $ }}
*/}}
{{- define "parley-lib.serviceAccount" -}}
{{- if .Values.serviceAccount.create -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "parley-lib.serviceAccountName" . }}
  namespace: {{ include "parley-lib.namespace" . }}
  labels:
    {{- include "parley-lib.labels" (dict "root" .) | nindent 4 }}
  {{- with (include "parley-lib.annotations" (dict "root" . "extra" .Values.serviceAccount.annotations)) }}
  annotations:
    {{- . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken | default false }}
{{- end -}}
{{- end -}}
