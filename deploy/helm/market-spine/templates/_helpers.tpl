{{/* Names ---------------------------------------------------------------------------------- */}}

{{- define "market-spine.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "market-spine.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "market-spine.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels: common, and the selector of one component (api, worker, scheduler, ...). */}}
{{- define "market-spine.labels" -}}
helm.sh/chart: {{ include "market-spine.chart" . }}
app.kubernetes.io/name: {{ include "market-spine.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: market-spine
{{- end }}

{{- define "market-spine.selectorLabels" -}}
app.kubernetes.io/name: {{ include "market-spine.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "market-spine.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "market-spine.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "market-spine.secretName" -}}
{{- default (include "market-spine.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{/* The image, always with a fixed tag (or a digest): never `latest`. */}}
{{- define "market-spine.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag | toString }}
{{- if eq $tag "latest" }}
{{- fail "image.tag: use a fixed version, not latest" }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Host names Django accepts: ingress hosts, the API Service's names, allowedHosts. */}}
{{- define "market-spine.allowedHosts" -}}
{{- $api := printf "%s-api" (include "market-spine.fullname" .) }}
{{- $hosts := list $api (printf "%s.%s" $api .Release.Namespace) (printf "%s.%s.svc" $api .Release.Namespace) }}
{{- if .Values.ingress.enabled }}
{{- range .Values.ingress.hosts }}
{{- $hosts = append $hosts .host }}
{{- end }}
{{- end }}
{{- $hosts = concat $hosts .Values.allowedHosts }}
{{- join "," (uniq $hosts) }}
{{- end }}

{{- define "market-spine.csrfTrustedOrigins" -}}
{{- $origins := list }}
{{- if .Values.ingress.enabled }}
{{- range .Values.ingress.hosts }}
{{- $origins = append $origins (printf "https://%s" .host) }}
{{- end }}
{{- end }}
{{- join "," $origins }}
{{- end }}

{{/* The Django secret key: given, kept from the installed Secret, or generated once. */}}
{{- define "market-spine.djangoSecretKey" -}}
{{- if .Values.secret.djangoSecretKey }}
{{- .Values.secret.djangoSecretKey | b64enc }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "market-spine.fullname" .) }}
{{- if and $existing (index $existing.data "DJANGO_SECRET_KEY") }}
{{- index $existing.data "DJANGO_SECRET_KEY" }}
{{- else }}
{{- if not (hasKey .Values.secret "generatedKey") }}
{{- $_ := set .Values.secret "generatedKey" (randAlphaNum 64) }}
{{- end }}
{{- .Values.secret.generatedKey | b64enc }}
{{- end }}
{{- end }}
{{- end }}

{{/* The data of the chart-made Secret (shared by the Secret and the migration hook's copy). */}}
{{- define "market-spine.secretData" -}}
DJANGO_SECRET_KEY: {{ include "market-spine.djangoSecretKey" . }}
DATABASE_URL: {{ required "secret.databaseUrl is required (or set secret.existingSecret)" .Values.secret.databaseUrl | b64enc }}
SPINE_BROKER_URL: {{ required "secret.brokerUrl is required (or set secret.existingSecret)" .Values.secret.brokerUrl | b64enc }}
{{- if .Values.secret.redisUrl }}
REDIS_URL: {{ .Values.secret.redisUrl | b64enc }}
{{- end }}
{{- end }}

{{/* Environment of every application container: settings, credentials, the pod IP. */}}
{{- define "market-spine.envFrom" -}}
- configMapRef:
    name: {{ include "market-spine.fullname" . }}
- secretRef:
    name: {{ include "market-spine.secretName" . }}
{{- end }}

{{- define "market-spine.env" -}}
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod-level parts shared by every pod. */}}
{{- define "market-spine.podCommon" -}}
serviceAccountName: {{ include "market-spine.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{- define "market-spine.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
- name: metrics
  emptyDir:
    sizeLimit: {{ .Values.metricsVolume.sizeLimit }}
{{- end }}

{{- define "market-spine.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: metrics
  mountPath: /var/run/spine/metrics
{{- end }}

{{/* Restart pods when the settings change. */}}
{{- define "market-spine.checksums" -}}
checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end }}
