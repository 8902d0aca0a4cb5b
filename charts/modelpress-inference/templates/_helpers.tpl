{{- define "mp.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mp.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mp.labels" -}}
{{ include "mp.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.runtime }}
{{- end -}}

{{- define "mp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The registered model's name: the folder `modelpress pull` writes under /models. */}}
{{- define "mp.modelName" -}}
{{- regexReplaceAll "^models:/([^/@]+).*$" .Values.model.uri "${1}" -}}
{{- end -}}

{{/* The LLM build the initContainer pulls (`modelpress pull --build`); empty for ONNX runtimes. */}}
{{- define "mp.llmBuild" -}}
{{- if eq .Values.runtime "vllm" }}{{ .Values.vllm.build }}{{ else if eq .Values.runtime "genai" }}onnxruntime-genai{{ end -}}
{{- end -}}

{{- define "mp.httpPort" -}}
{{- if eq .Values.runtime "triton" }}8000{{ else }}{{ .Values.service.httpPort }}{{ end -}}
{{- end -}}

{{/* initContainer: fetch the model from the MLflow registry into the shared emptyDir. */}}
{{- define "mp.puller" -}}
- name: pull-model
  image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["modelpress", "pull"]
  args:
    - {{ .Values.model.uri | quote }}
    - "--to"
    - "/models"
    {{- with include "mp.llmBuild" . }}
    - "--build"
    - {{ . | quote }}
    {{- else }}
    - "--instance-kind"
    - {{ ternary "gpu" "cpu" .Values.gpu.enabled | quote }}
    {{- if .Values.model.optimize }}
    - "--optimize"
    {{- end }}
    {{- end }}
  env:
    - name: MLFLOW_TRACKING_URI
      value: {{ .Values.mlflow.trackingUri | quote }}
    {{- with .Values.mlflow.s3EndpointUrl }}
    - name: MLFLOW_S3_ENDPOINT_URL
      value: {{ . | quote }}
    {{- end }}
    - name: HOME
      value: /scratch
    - name: TMPDIR
      value: /scratch
  {{- with .Values.mlflow.credentialsSecret }}
  envFrom:
    - secretRef:
        name: {{ . }}
  {{- end }}
  resources:
    {{- toYaml .Values.pullerResources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - {name: models, mountPath: /models}
    - {name: scratch, mountPath: /scratch}
    - {name: scratch, mountPath: /tmp, subPath: tmp}
{{- end -}}

{{/* The serving container: the CPU server or Triton. */}}
{{- define "mp.server" -}}
- name: {{ ternary "kserve-container" "server" (eq .Values.mode "kserve") }}
  {{- if eq .Values.runtime "triton" }}
  image: "{{ .Values.tritonImage.repository }}:{{ .Values.tritonImage.tag }}"
  imagePullPolicy: {{ .Values.tritonImage.pullPolicy }}
  command: ["tritonserver"]
  args:
    - "--model-repository=/models"
    - "--model-control-mode=explicit"
    - "--load-model={{ include "mp.modelName" . }}{{ if eq .Values.triton.backend "tensorrt" }}-tensorrt{{ end }}"
    - "--strict-readiness=true"
    - "--exit-on-error=true"
    - "--http-port=8000"
    - "--grpc-port=8001"
    - "--metrics-port=8002"
  ports:
    - {name: http, containerPort: 8000, protocol: TCP}
    - {name: grpc, containerPort: 8001, protocol: TCP}
    - {name: metrics, containerPort: 8002, protocol: TCP}
  {{- else if eq .Values.runtime "vllm" }}
  image: "{{ .Values.vllmImage.repository }}:{{ .Values.vllmImage.tag }}"
  imagePullPolicy: {{ .Values.vllmImage.pullPolicy }}
  command: ["vllm", "serve"]
  args:
    - "/models/{{ .Values.vllm.build }}"
    - "--served-model-name={{ include "mp.modelName" . }}"
    - "--host=0.0.0.0"
    - "--port={{ .Values.service.httpPort }}"
    - "--tensor-parallel-size={{ .Values.gpu.count }}"
    - "--max-model-len={{ .Values.vllm.maxModelLen }}"
    - "--gpu-memory-utilization={{ .Values.vllm.gpuMemoryUtilization }}"
    {{- range .Values.vllm.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  {{- else }}
  image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["modelpress", "serve"]
  args:
    {{- /* genai: the folder `pull --build onnxruntime-genai` wrote; serve sees its genai_config.json */}}
    - "--model-repository=/models{{ with include "mp.llmBuild" . }}/{{ . }}{{ end }}"
    - "--http-port={{ .Values.service.httpPort }}"
    - "--workers={{ .Values.server.workers }}"
    - "--threads={{ .Values.server.threads }}"
  {{- end }}
  {{- if ne .Values.runtime "triton" }}
  ports:
    - {name: http, containerPort: {{ .Values.service.httpPort }}, protocol: TCP}
  {{- end }}
  env:
    - name: HOME
      value: /scratch
    - name: TMPDIR
      value: /scratch
    {{- if eq .Values.runtime "vllm" }}
    # the model is on disk: never reach for a hub; no usage reports from inside the cluster
    - name: HF_HUB_OFFLINE
      value: "1"
    - name: VLLM_NO_USAGE_STATS
      value: "1"
    - name: DO_NOT_TRACK
      value: "1"
    {{- end }}
  {{- /* vLLM's one health endpoint serves all three probes */}}
  {{- $vllmHealth := ternary "/health" "" (eq .Values.runtime "vllm") }}
  startupProbe:
    httpGet: {path: {{ $vllmHealth | default .Values.probes.startup.path }}, port: http}
    periodSeconds: {{ .Values.probes.startup.periodSeconds }}
    failureThreshold: {{ .Values.probes.startup.failureThreshold }}
  readinessProbe:
    httpGet: {path: {{ $vllmHealth | default .Values.probes.readiness.path }}, port: http}
    periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
    failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
  livenessProbe:
    httpGet: {path: {{ $vllmHealth | default .Values.probes.liveness.path }}, port: http}
    periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
    failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
  resources:
    {{- $resources := deepCopy .Values.resources }}
    {{- if .Values.gpu.enabled }}
    {{- $limits := default dict $resources.limits }}
    {{- $_ := set $limits .Values.gpu.resourceName .Values.gpu.count }}
    {{- $_ := set $resources "limits" $limits }}
    {{- end }}
    {{- toYaml $resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - {name: models, mountPath: /models, readOnly: true}
    - {name: scratch, mountPath: /scratch}
    - {name: scratch, mountPath: /tmp, subPath: tmp}
    {{- if eq .Values.runtime "vllm" }}
    - {name: dshm, mountPath: /dev/shm}
    {{- end }}
{{- end -}}

{{/* Pod-level settings shared by the Deployment and the InferenceService predictor. */}}
{{- define "mp.podSpec" -}}
serviceAccountName: {{ include "mp.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .Values.gpu.enabled }}
{{- with .Values.gpu.runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
{{- end }}
{{- $nodeSelector := .Values.nodeSelector }}
{{- if .Values.gpu.enabled }}{{ $nodeSelector = merge (deepCopy .Values.nodeSelector) .Values.gpu.nodeSelector }}{{ end }}
{{- with $nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $tolerations := .Values.tolerations }}
{{- if .Values.gpu.enabled }}{{ $tolerations = concat .Values.tolerations .Values.gpu.tolerations }}{{ end }}
{{- with $tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
initContainers:
  {{- include "mp.puller" . | nindent 2 }}
containers:
  {{- include "mp.server" . | nindent 2 }}
volumes:
  - name: models
    emptyDir:
      sizeLimit: {{ .Values.scratch.sizeLimit }}
  - name: scratch
    emptyDir:
      sizeLimit: {{ .Values.scratch.sizeLimit }}
  {{- if eq .Values.runtime "vllm" }}
  - name: dshm
    emptyDir:
      medium: Memory
      sizeLimit: {{ .Values.vllm.shmSize }}
  {{- end }}
{{- end -}}
