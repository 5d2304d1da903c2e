//go:build !linux

package main

import (
	"syscall"
	"time"
)

// childProcAttr: only Linux can tie the child's life to this process.
func childProcAttr() *syscall.SysProcAttr { return nil }

// processCPU is not measured here.
func processCPU() time.Duration { return 0 }
