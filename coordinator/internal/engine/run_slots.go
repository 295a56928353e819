package engine

import "github.com/nominacl/consolidation/pkg/slots"

// runSlots bounds how many runs are driven at once. A run takes a slot before its
// driver starts and gives it back when the driver returns; runs beyond the bound
// wait, and a freed slot goes to the smallest waiting run (fewest employees), of
// those the one that started first (the lowest run id), so a small closing sent
// at month end is not queued behind larger ones (docs/architecture.md, "Many runs
// at once"), and a restarted coordinator resumes its unfinished runs a few at a
// time.
type runSlots = slots.BySize

// newRunSlots returns n slots.
func newRunSlots(n int) *runSlots { return slots.New(n) }
