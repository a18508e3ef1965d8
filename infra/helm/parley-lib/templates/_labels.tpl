{{/*
Labels. Pass a dict with "root" (the top-level context) and, for a service's objects, "component".
*/}}

{{/*
Selector labels: they go into immutable selectors, so they never carry a version.
Usage: {{ include "parley-lib.selectorLabels" (dict "root" $ "component" "nlu") }}
*/}}
{{- define "parley-lib.selectorLabels" -}}
app.kubernetes.io/name: {{ include "parley-lib.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{/*
Standard labels for every object, plus .Values.commonLabels.
Usage: {{ include "parley-lib.labels" (dict "root" $ "component" "nlu") }}
*/}}
{{- define "parley-lib.labels" -}}
helm.sh/chart: {{ include "parley-lib.chart" .root }}
{{ include "parley-lib.selectorLabels" . }}
{{- with .root.Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: parley
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Object annotations as a YAML map: .Values.commonAnnotations merged with "extra" (which wins); empty when
there are none.
Usage:
  {{- with (include "parley-lib.annotations" (dict "root" $ "extra" .Values.nlu.service.annotations)) }}
  annotations:
    {{- . | nindent 4 }}
  {{- end }}
*/}}
{{- define "parley-lib.annotations" -}}
{{- $annotations := mergeOverwrite (deepCopy (.root.Values.commonAnnotations | default dict)) (.extra | default dict) -}}
{{- with $annotations }}
{{- toYaml . }}
{{- end }}
{{- end -}}
