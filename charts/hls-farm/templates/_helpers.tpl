{{- define "farm.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "farm.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "farm.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "farm.secretName" -}}
{{- default (printf "%s-secrets" (include "farm.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* Settings both binaries read, from the ConfigMap and the Secret. */}}
{{- define "farm.env" -}}
- name: FARM_QUEUE_PREFIX
  valueFrom: {configMapKeyRef: {name: {{ include "farm.fullname" . }}-settings, key: FARM_QUEUE_PREFIX}}
- name: FARM_S3_ENDPOINT
  valueFrom: {configMapKeyRef: {name: {{ include "farm.fullname" . }}-settings, key: FARM_S3_ENDPOINT}}
- name: FARM_S3_REGION
  valueFrom: {configMapKeyRef: {name: {{ include "farm.fullname" . }}-settings, key: FARM_S3_REGION}}
- name: FARM_STORAGE_RETRY_SECONDS
  valueFrom: {configMapKeyRef: {name: {{ include "farm.fullname" . }}-settings, key: FARM_STORAGE_RETRY_SECONDS}}
- name: AMQP_URL
  valueFrom: {secretKeyRef: {name: {{ include "farm.secretName" . }}, key: AMQP_URL}}
- name: AWS_ACCESS_KEY_ID
  valueFrom: {secretKeyRef: {name: {{ include "farm.secretName" . }}, key: AWS_ACCESS_KEY_ID, optional: true}}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ include "farm.secretName" . }}, key: AWS_SECRET_ACCESS_KEY, optional: true}}
- name: TMPDIR
  value: /scratch
{{- end -}}
