{{/*
A policy/v1 PodDisruptionBudget for one service. Set exactly one of pdb.minAvailable and
pdb.maxUnavailable (an integer or a percentage string); with neither, maxUnavailable is 1.

Arguments (a dict): root, component, values.
Usage: {{ include "parley-lib.pdb" (dict "root" $ "component" "nlu" "values" .Values.nlu) }}
*/}}
{{- define "parley-lib.pdb" -}}
{{- $root := .root -}}
{{- $pdb := .values.pdb -}}
{{- $ctx := dict "root" $root "component" .component -}}
{{- $hasMin := and (not (kindIs "invalid" $pdb.minAvailable)) (ne (toString $pdb.minAvailable) "") -}}
{{- $hasMax := and (not (kindIs "invalid" $pdb.maxUnavailable)) (ne (toString $pdb.maxUnavailable) "") -}}
{{- if and $hasMin $hasMax -}}
{{- fail (printf "%s.pdb: set minAvailable or maxUnavailable, not both" .component) -}}
{{- end -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
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
  {{- if $hasMin }}
  minAvailable: {{ $pdb.minAvailable }}
  {{- else if $hasMax }}
  maxUnavailable: {{ $pdb.maxUnavailable }}
  {{- else }}
  maxUnavailable: 1
  {{- end }}
  selector:
    matchLabels:
      {{- include "parley-lib.selectorLabels" $ctx | nindent 6 }}
{{- end -}}
