//go:build !unix

package bench

import (
	"errors"
	"time"
)

// processCPU is not measured outside Unix.
func processCPU() (time.Duration, error) {
	return 0, errors.New("the process's CPU time is measured on Unix only")
}
