{{/* The release's base name, at most 63 characters. */}}
{{- define "video-runner.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "video-runner.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "video-runner.secretName" -}}
{{- .Values.secret.existingSecret | default (printf "%s-secret" (include "video-runner.fullname" .)) -}}
{{- end -}}

{{- define "video-runner.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "video-runner.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/*
The three services of the one image: the command, the values key, and the consumer groups
each one's lag is read from (topic and group names as in settings.py, overridable in config).
*/}}
{{- define "video-runner.components" -}}
{{- $c := .Values.config -}}
runner:
  command: serve
  values: runner
  triggers:
    - topic: {{ $c.TOPIC_OUTBOX_EVENTS | default "outbox_events" }}
      group: {{ $c.GROUP_RUNNER | default "runner-group" }}
      threshold: {{ .Values.runner.autoscaling.lagThreshold }}
    - topic: {{ $c.TOPIC_INFERENCE_RESULTS | default "inference_results" }}
      group: {{ $c.GROUP_RESULTS | default "runner-results-group" }}
      threshold: {{ .Values.runner.autoscaling.resultsLagThreshold }}
inference:
  command: inference
  values: inference
  triggers:
    - topic: {{ $c.TOPIC_INFERENCE_TASKS | default "inference_tasks" }}
      group: {{ $c.GROUP_INFERENCE | default "inference-group" }}
      threshold: {{ .Values.inference.autoscaling.lagThreshold }}
outbox-s3:
  command: outbox-s3
  values: outbox
  triggers:
    - topic: {{ $c.TOPIC_PREDICTABLE_EVENTS | default "predictable_events" }}
      group: {{ $c.GROUP_OUTBOX | default "outbox-s3-group" }}
      threshold: {{ .Values.outbox.autoscaling.lagThreshold }}
{{- end -}}
