{{/* Names, labels and small shared pieces of the oem-hosting chart. */}}

{{- define "oem-hosting.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>-<chart>", or the release name alone when it already holds the chart name. */}}
{{- define "oem-hosting.fullname" -}}
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

{{- define "oem-hosting.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "oem-hosting.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: oem-hosting
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: include with (list $ "operator"). */}}
{{- define "oem-hosting.selector" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "oem-hosting.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "oem-hosting.operator.fullname" -}}
{{- printf "%s-operator" (include "oem-hosting.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "oem-hosting.webhooks.fullname" -}}
{{- printf "%s-webhooks" (include "oem-hosting.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "oem-hosting.panel.fullname" -}}
{{- printf "%s-panel" (include "oem-hosting.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "oem-hosting.operator.serviceAccountName" -}}
{{- default (include "oem-hosting.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{- define "oem-hosting.webhooks.serviceAccountName" -}}
{{- default (include "oem-hosting.webhooks.fullname" .) .Values.webhooks.serviceAccount.name -}}
{{- end -}}

{{- define "oem-hosting.panel.serviceAccountName" -}}
{{- default (include "oem-hosting.panel.fullname" .) .Values.panel.serviceAccount.name -}}
{{- end -}}

{{/* An image name with the project's prefix `oem.local/oem-hosting/` replaced by the value
imageRegistry when it is set: include with (list $ "oem.local/oem-hosting/ftp:2026.12.0"). */}}
{{- define "oem-hosting.rehome" -}}
{{- $ := index . 0 -}}
{{- $image := index . 1 | toString -}}
{{- $registry := $.Values.imageRegistry | default "" | trimSuffix "/" -}}
{{- if and $registry (hasPrefix "oem.local/oem-hosting/" $image) -}}
{{- printf "%s/%s" $registry (trimPrefix "oem.local/oem-hosting/" $image) -}}
{{- else -}}
{{- $image -}}
{{- end -}}
{{- end -}}

{{/* repository:tag, the tag defaulting to the chart's appVersion (images/TAG), the repository
rehomed by imageRegistry: include with (list $ .Values.operator.image). */}}
{{- define "oem-hosting.image" -}}
{{- $ := index . 0 -}}
{{- $image := index . 1 -}}
{{- include "oem-hosting.rehome" (list $ (printf "%s:%s" $image.repository (default $.Chart.AppVersion $image.tag))) -}}
{{- end -}}

{{/* The securityPolicy value with its images rehomed by imageRegistry, as YAML: the operator's
configuration and the webhooks' policy file both render it, so they always agree. */}}
{{- define "oem-hosting.securityPolicy" -}}
{{- $ := . -}}
{{- $policy := dict -}}
{{- range $runtime, $versions := .Values.securityPolicy -}}
{{- $list := list -}}
{{- range $entry := $versions -}}
{{- $entry = deepCopy $entry -}}
{{- if $entry.image -}}
{{- $_ := set $entry "image" (include "oem-hosting.rehome" (list $ $entry.image)) -}}
{{- end -}}
{{- $list = append $list $entry -}}
{{- end -}}
{{- $_ := set $policy $runtime $list -}}
{{- end -}}
{{- toYaml $policy -}}
{{- end -}}

{{/* The Pod Security "restricted" profile, for pods and for containers. */}}
{{- define "oem-hosting.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "oem-hosting.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* A RBAC file of files/ as objects (one per YAML document), with the release's labels added. */}}
{{- define "oem-hosting.rbacFile" -}}
{{- $ := index . 0 -}}
{{- $file := index . 1 -}}
{{- $text := $.Files.Get $file -}}
{{- if not $text -}}
{{- fail (printf "%s is missing from the chart" $file) -}}
{{- end -}}
{{- range $doc := regexSplit "(?m)^---\\s*$" $text -1 }}
{{- $object := fromYaml $doc }}
{{- if $object }}
{{- $labels := merge (fromYaml (include "oem-hosting.labels" $)) ($object.metadata.labels | default dict) }}
{{- $_ := set $object.metadata "labels" $labels }}
---
{{ toYaml $object }}
{{- end }}
{{- end }}
{{- end -}}
