package bench

import "github.com/mono/webhookd/internal/procs"

// processCPU is the user and system CPU this process has used (Unix only).
var processCPU = procs.ProcessCPU
