{{/*
The image reference of one service: "[registry/]repository(:tag|@digest)".
The registry falls back to .Values.global.imageRegistry, the tag to .Values.global.imageTag and then to the
chart's appVersion. A digest wins over a tag.
Usage: {{ include "parley-lib.image" (dict "root" $ "values" .Values.nlu) }}
*/}}
{{- define "parley-lib.image" -}}
{{- $image := .values.image -}}
{{- $global := .root.Values.global | default dict -}}
{{- $registry := $image.registry | default $global.imageRegistry -}}
{{- $repository := required (printf "image.repository is required for %s" (.component | default "this service")) $image.repository -}}
{{- $ref := ternary (printf "%s/%s" $registry $repository) $repository (not (empty $registry)) -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $ref $image.digest -}}
{{- else -}}
{{- $tag := $image.tag | default $global.imageTag | default .root.Chart.AppVersion -}}
{{- printf "%s:%s" $ref (toString $tag) -}}
{{- end -}}
{{- end -}}

{{/*
imagePullSecrets from .Values.global.imagePullSecrets (a list of names or of {name: ...}).
Usage: {{- include "parley-lib.imagePullSecrets" $ | nindent 6 }}
*/}}
{{- define "parley-lib.imagePullSecrets" -}}
{{- $secrets := list -}}
{{- range ((.Values.global | default dict).imagePullSecrets | default list) -}}
{{- if kindIs "map" . -}}
{{- $secrets = append $secrets (dict "name" .name) -}}
{{- else -}}
{{- $secrets = append $secrets (dict "name" .) -}}
{{- end -}}
{{- end -}}
{{- if $secrets }}
imagePullSecrets:
  {{- toYaml $secrets | nindent 2 }}
{{- end }}
{{- end -}}
