{{/* The chart's name, shortened to a label's 63 characters. */}}
{{- define "webhookd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name for every object: <release> when it already
holds the chart's name, else <release>-<chart>. */}}
{{- define "webhookd.fullname" -}}
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

{{/* Labels of every object. */}}
{{- define "webhookd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "webhookd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: webhookd
{{- end }}

{{/* Selector labels of one component: include with (dict "root" $ "component" "api"). */}}
{{- define "webhookd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "webhookd.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The image of every container. */}}
{{- define "webhookd.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The Secret's name: existingSecret, or the one the chart creates. */}}
{{- define "webhookd.secretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else }}
{{- include "webhookd.fullname" . }}
{{- end }}
{{- end }}

{{/* The workers' by-key pool: 2 × engine.BatchConcurrency connections
on top of WEBHOOKD_DB_MAX_CONNS. deploy_test.go checks it against the code. */}}
{{- define "webhookd.workerByKeyConns" -}}2{{- end }}

{{/* Fails the render when the pods can open more connections than the
database has (values.yaml, "database"). */}}
{{- define "webhookd.checkConnectionBudget" -}}
{{- $surge := int .Values.rollingUpdate.maxSurge }}
{{- $api := mul (add (int .Values.api.replicas) $surge) (add (int .Values.api.dbMaxConns) 1) }}
{{- $worker := mul (add (int .Values.worker.replicas) $surge) (add (int .Values.worker.dbMaxConns) 1 (int (include "webhookd.workerByKeyConns" .))) }}
{{- $total := add $api $worker (int .Values.database.headroomConnections) }}
{{- $limit := sub (int .Values.database.maxConnections) (int .Values.database.reservedConnections) }}
{{- if gt $total $limit }}
{{- fail (printf "the PostgreSQL connection budget is exceeded: api %d connections + worker %d + headroom %d = %d, over database.maxConnections − database.reservedConnections = %d; lower api/worker replicas or dbMaxConns, or raise the server's max_connections and database.maxConnections (values.yaml, \"database\")" $api $worker (int .Values.database.headroomConnections) $total $limit) }}
{{- end }}
{{- end }}

{{/* DATABASE_URL from the Secret, as a container env entry. */}}
{{- define "webhookd.databaseURLEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "webhookd.secretName" . }}
      key: database-url
{{- end }}

{{/* The container security context of every container: non-root, read-only
root filesystem, no privilege escalation, no capabilities. */}}
{{- define "webhookd.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
{{- end }}

{{/* A webhookd Deployment: include with (dict "root" $ "component" "api"
"role" .Values.api). */}}
{{- define "webhookd.deployment" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $role := .role }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "webhookd.fullname" $root }}-{{ .component }}
  labels:
    {{- include "webhookd.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  replicas: {{ $role.replicas }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: {{ $v.rollingUpdate.maxSurge }}
      maxUnavailable: {{ $v.rollingUpdate.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "webhookd.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "webhookd.labels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .component }}
        {{- if $v.metrics.enabled }}
        # Selected by the metrics Service.
        webhookd/metrics: "true"
        {{- end }}
      {{- $annotations := deepCopy (default dict $role.podAnnotations) }}
      {{- if not $v.existingSecret }}
      {{- /* Roll the pods when the chart's Secret changes. */}}
      {{- $_ := set $annotations "checksum/secret" (toJson $v.secret | sha256sum) }}
      {{- end }}
      {{- with $annotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      {{- with $v.serviceAccountName }}
      serviceAccountName: {{ . }}
      {{- end }}
      automountServiceAccountToken: false
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      # More than WEBHOOKD_SHUTDOWN_TIMEOUT, or SIGKILL comes before the
      # attempts still running are recorded.
      terminationGracePeriodSeconds: {{ add $v.shutdownTimeoutSeconds $v.terminationGraceMarginSeconds }}
      containers:
        - name: webhookd
          image: {{ include "webhookd.image" $root }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          args: ["serve"]
          env:
            - name: WEBHOOKD_ROLES
              value: {{ .component }}
            - name: WEBHOOKD_ADDR
              value: ":8080"
            - name: WEBHOOKD_METRICS_ADDR
              value: {{ if $v.metrics.enabled }}{{ printf ":%d" (int $v.metrics.port) | quote }}{{ else }}""{{ end }}
            - name: WEBHOOKD_DB_MAX_CONNS
              value: {{ $role.dbMaxConns | quote }}
            - name: WEBHOOKD_SHUTDOWN_TIMEOUT
              value: {{ printf "%ds" (int $v.shutdownTimeoutSeconds) | quote }}
            {{- include "webhookd.databaseURLEnv" $root | nindent 12 }}
            - name: WEBHOOKD_ENCRYPTION_KEY
              valueFrom:
                secretKeyRef:
                  name: {{ include "webhookd.secretName" $root }}
                  key: encryption-key
            - name: WEBHOOKD_BOOTSTRAP_ADMIN_KEY
              valueFrom:
                secretKeyRef:
                  name: {{ include "webhookd.secretName" $root }}
                  key: bootstrap-admin-key
                  optional: true
            {{- range $name, $value := merge (deepCopy $role.env) $v.env }}
            - name: {{ $name }}
              value: {{ $value | toString | quote }}
            {{- end }}
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
            {{- if $v.metrics.enabled }}
            - name: metrics
              containerPort: {{ $v.metrics.port }}
              protocol: TCP
            {{- end }}
          # Start-up waits up to WEBHOOKD_DB_WAIT (30 s) for the database
          # before it listens: the startup probe allows 60 s.
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 2
            failureThreshold: 30
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          # Not ready while the database doesn't answer or its schema is
          # older than the binary.
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 3
          resources:
            {{- toYaml $role.resources | nindent 12 }}
          securityContext:
            {{- include "webhookd.containerSecurityContext" $root | nindent 12 }}
      {{- with $role.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $role.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $role.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $role.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/* A PodDisruptionBudget: include with (dict "root" $ "component" "api"
"role" .Values.api). */}}
{{- define "webhookd.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "webhookd.fullname" .root }}-{{ .component }}
  labels:
    {{- include "webhookd.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  maxUnavailable: {{ .role.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "webhookd.selectorLabels" . | nindent 6 }}
{{- end }}
