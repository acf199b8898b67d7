package controller

import (
	"math"
	"time"
)

// ScalePolicy is a validated scaling policy in plain numbers.
type ScalePolicy struct {
	Min, Max   int32
	Target     float64 // wanted per-replica load (in-flight requests or RPS)
	Tolerance  float64 // relative band around Target that changes nothing
	UpWindow   time.Duration
	DownWindow time.Duration
}

// Recommendation is one raw replica recommendation and when it was made.
type Recommendation struct {
	At       time.Time
	Replicas int32
}

// Desired computes the replica count with the HorizontalPodAutoscaler's
// algorithm: raw = ceil(current × observed / target) unless observed is within
// tolerance of target; then stabilization, as the HPA does it: a scale-up goes
// no higher than the lowest recommendation of the up window, a scale-down no
// lower than the highest recommendation of the down window, so a short dip or
// spike in noisy load does not move the Deployment; finally the min/max bounds.
//
// observed is the per-replica average load. history holds earlier raw
// recommendations; Desired returns it with the new one appended and those
// older than both windows dropped. It is a pure function: the caller owns the
// history and the clock.
func Desired(current int32, observed float64, p ScalePolicy, history []Recommendation, now time.Time) (int32, []Recommendation) {
	raw := current
	if p.Target > 0 && current > 0 {
		ratio := observed / p.Target
		if math.Abs(ratio-1) > p.Tolerance {
			raw = int32(math.Ceil(float64(current) * ratio))
		}
	} else if current == 0 {
		// A Deployment scaled to zero by hand is left alone: nothing to measure.
		raw = 0
	}
	raw = clamp(raw, p.Min, p.Max)

	keep := max(p.UpWindow, p.DownWindow)
	kept := history[:0:0]
	for _, r := range history {
		if now.Sub(r.At) <= keep {
			kept = append(kept, r)
		}
	}
	kept = append(kept, Recommendation{At: now, Replicas: raw})

	upLimit, downLimit := raw, raw
	for _, r := range kept {
		age := now.Sub(r.At)
		if age <= p.UpWindow && r.Replicas < upLimit {
			upLimit = r.Replicas
		}
		if age <= p.DownWindow && r.Replicas > downLimit {
			downLimit = r.Replicas
		}
	}
	desired := current
	if desired < upLimit {
		desired = upLimit
	}
	if desired > downLimit {
		desired = downLimit
	}
	if current == 0 {
		desired = 0
	} else {
		desired = clamp(desired, p.Min, p.Max)
	}
	return desired, kept
}

func clamp(n, lo, hi int32) int32 {
	if n < lo {
		return lo
	}
	if hi > 0 && n > hi {
		return hi
	}
	return n
}
