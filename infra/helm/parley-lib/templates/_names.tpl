{{/*
Names. Kubernetes names are limited to 63 characters (DNS-1123 labels), so every name is cut there.
*/}}

{{/*
The chart name, or .Values.nameOverride.
Usage: {{ include "parley-lib.name" $ }}
*/}}
{{- define "parley-lib.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The fully qualified app name: .Values.fullnameOverride, or "<release>-<chart>" (just "<release>" when the
release name already contains the chart name).
Usage: {{ include "parley-lib.fullname" $ }}
*/}}
{{- define "parley-lib.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The name of one service's objects: "<fullname>-<component>".
Usage: {{ include "parley-lib.componentFullname" (dict "root" $ "component" "nlu") }}
*/}}
{{- define "parley-lib.componentFullname" -}}
{{- printf "%s-%s" (include "parley-lib.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
"<chart>-<version>" for the helm.sh/chart label.
Usage: {{ include "parley-lib.chart" $ }}
*/}}
{{- define "parley-lib.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The release namespace, or .Values.namespaceOverride.
Usage: {{ include "parley-lib.namespace" $ }}
*/}}
{{- define "parley-lib.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The ServiceAccount the pods run as.
Usage: {{ include "parley-lib.serviceAccountName" $ }}
*/}}
{{- define "parley-lib.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "parley-lib.fullname" .) .Values.serviceAccount.name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The name of the ConfigMap that holds the common environment.
Usage: {{ include "parley-lib.commonEnvName" $ }}
*/}}
{{- define "parley-lib.commonEnvName" -}}
{{- printf "%s-env" (include "parley-lib.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
