//go:build !unix

package procs

import (
	"errors"
	"time"
)

// ProcessCPU can't be read here: Start fails, and the process keeps the
// runtime's count.
func ProcessCPU() (time.Duration, error) {
	return 0, errors.New("procs: the process's CPU time can't be read on this system")
}
