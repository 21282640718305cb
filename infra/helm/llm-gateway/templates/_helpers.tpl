{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "llm-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects. Truncated to 50 characters so that suffixes such as
"-worker-openrouter" still fit in 63.
*/}}
{{- define "llm-gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "llm-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels; a component ("ingress", "worker", "mock-provider") is added by the callers.
*/}}
{{- define "llm-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "llm-gateway.labels" -}}
helm.sh/chart: {{ include "llm-gateway.chart" . }}
{{ include "llm-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llm-gateway
{{- end }}

{{- define "llm-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "llm-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "llm-gateway.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "llm-gateway.secretName" -}}
{{- default (printf "%s-secrets" (include "llm-gateway.fullname" .)) .Values.existingSecret }}
{{- end }}

{{- define "llm-gateway.configMapName" -}}
{{- printf "%s-config" (include "llm-gateway.fullname" .) }}
{{- end }}

{{/*
Environment variable prefix of a provider id: "hf" -> "HF", "my-vllm" -> "MY_VLLM".
*/}}
{{- define "llm-gateway.envPrefix" -}}
{{- . | upper | replace "-" "_" }}
{{- end }}

{{/*
Names the gateway's Kafka objects; the only place the chart spells them (Sources/Protocol/Topics.swift
is the application's).
*/}}
{{- define "llm-gateway.topic" -}}
{{- printf "llm.jobs.%s" . }}
{{- end }}

{{- define "llm-gateway.consumerGroup" -}}
{{- printf "llm-gateway.worker.%s" . }}
{{- end }}

{{/*
Fails the render when the drain would be cut short by the kubelet's SIGKILL.
*/}}
{{- define "llm-gateway.checkGracePeriod" -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (int .Values.drainSeconds) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be larger than drainSeconds (%v)" .Values.terminationGracePeriodSeconds .Values.drainSeconds) }}
{{- end }}
{{- end }}

{{/*
Pod-level settings shared by every Deployment. Called with the root context.
*/}}
{{- define "llm-gateway.podCommon" -}}
serviceAccountName: {{ include "llm-gateway.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
{{- end }}

{{/*
Pod template annotations: restart pods when the ConfigMap or the chart's Secret changes.
*/}}
{{- define "llm-gateway.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- if not .Values.existingSecret }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Environment from the ConfigMap and the Secret, for every gateway container.
*/}}
{{- define "llm-gateway.envFrom" -}}
- configMapRef:
    name: {{ include "llm-gateway.configMapName" . }}
- secretRef:
    name: {{ include "llm-gateway.secretName" . }}
{{- end }}
