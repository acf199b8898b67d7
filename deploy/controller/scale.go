package controller

import (
	"math"
	"time"
)

// The replica math of the HorizontalPodAutoscaler, as pure functions:
// Recommend is its replica calculator (k8s.io/kubernetes
// pkg/controller/podautoscaler/replica_calculator.go), Desired its
// stabilization and rate behavior (horizontal.go,
// normalizeDesiredReplicasWithBehaviors). scale_test.go checks both against
// the examples of the HPA's documentation.

// PodMetric is one gateway pod as the autoscaler sees it.
type PodMetric struct {
	Value float64 // the pod's load (in-flight requests or requests/s)
	// Ready is false for a pod that is pending or not ready yet: its load
	// does not count, and on a scale-up it is taken as 0.
	Ready bool
	// Missing is true for a ready pod whose metric could not be read: taken
	// as 0 on a scale-up and as the target on a scale-down.
	Missing bool
}

// Recommend is the HPA's raw replica recommendation for a per-pod target:
// the usage ratio over ready pods that reported, ceil(ratio × those pods),
// nothing within tolerance, and, when some pods are not ready or have no
// metric, the conservative second pass that assumes they use nothing on a
// scale-up (and missing ones exactly the target on a scale-down), keeping
// the current count if that pass changes the direction or lands within
// tolerance. ok is false when no ready pod reported (nothing to decide on).
func Recommend(current int32, pods []PodMetric, target, tolerance float64) (replicas int32, ratio float64, ok bool) {
	var sum float64
	var n, unready, missing int
	for _, p := range pods {
		switch {
		case !p.Ready:
			unready++
		case p.Missing:
			missing++
		default:
			sum += p.Value
			n++
		}
	}
	if n == 0 || target <= 0 {
		return current, 0, false
	}
	ratio = sum / float64(n) / target
	scaleUpWithUnready := unready > 0 && ratio > 1
	if !scaleUpWithUnready && missing == 0 {
		if math.Abs(1-ratio) <= tolerance {
			return current, ratio, true
		}
		return int32(math.Ceil(ratio * float64(n))), ratio, true
	}
	total, count := sum, n
	if missing > 0 {
		if ratio < 1 {
			total += float64(missing) * target // scale-down: missing pods at the target
		}
		count += missing // scale-up: missing pods at 0
	}
	if scaleUpWithUnready {
		count += unready // at 0
	}
	newRatio := total / float64(count) / target
	if math.Abs(1-newRatio) <= tolerance || (ratio < 1 && newRatio > 1) || (ratio > 1 && newRatio < 1) {
		return current, ratio, true
	}
	replicas = int32(math.Ceil(newRatio * float64(count)))
	if (newRatio < 1 && replicas > current) || (newRatio > 1 && replicas < current) {
		return current, ratio, true
	}
	return replicas, ratio, true
}

// ScaleRule allows a change of at most Value pods (Percent false) or Value
// percent of the replicas at the period's start, within any Period.
type ScaleRule struct {
	Percent bool
	Value   int32
	Period  time.Duration
}

// The HPA's default behavior.
var (
	DefaultScaleUpRules   = []ScaleRule{{Percent: true, Value: 100, Period: 15 * time.Second}, {Value: 4, Period: 15 * time.Second}}
	DefaultScaleDownRules = []ScaleRule{{Percent: true, Value: 100, Period: 15 * time.Second}}
)

// ScalePolicy is a validated scaling policy in plain numbers.
type ScalePolicy struct {
	Min, Max   int32
	Target     float64 // wanted per-replica load (in-flight requests or RPS)
	Tolerance  float64 // relative band around Target that changes nothing
	UpWindow   time.Duration
	DownWindow time.Duration
	// UpRules and DownRules limit the rate of change; the rule allowing the
	// most change wins (the HPA's selectPolicy Max). Nil means the HPA's
	// defaults; an empty non-nil slice means no limit.
	UpRules, DownRules []ScaleRule
}

// Recommendation is one raw replica recommendation (or, in
// History.Changes, one signed replica change) and when it was made.
type Recommendation struct {
	At       time.Time
	Replicas int32
}

// History is what Desired remembers between decisions: the raw
// recommendations of the stabilization windows and the replica changes of
// the rate rules' periods. The autoscaler keeps it in the WeirRoute's status,
// so that it survives a change of leader.
type History struct {
	Recommendations []Recommendation
	Changes         []Recommendation
}

// Desired turns a raw recommendation into the replica count to set, as the
// HPA does: stabilization (a scale-up goes no higher than the lowest
// recommendation of the up window, a scale-down no lower than the highest of
// the down window, so a short dip or spike does not move the Deployment),
// then the rate rules against the changes made within their periods, then
// the min/max bounds. It returns h with this recommendation (and the
// change, if any) added and entries older than every window and period
// dropped. It is a pure function: the caller owns the history and the clock.
func Desired(current, raw int32, p ScalePolicy, h History, now time.Time) (int32, History) {
	if current == 0 {
		// A Deployment scaled to zero by hand is left alone: nothing to measure.
		return 0, h
	}
	upRules, downRules := p.UpRules, p.DownRules
	if upRules == nil {
		upRules = DefaultScaleUpRules
	}
	if downRules == nil {
		downRules = DefaultScaleDownRules
	}

	// Stabilization.
	upLimit, downLimit := raw, raw
	for _, r := range h.Recommendations {
		age := now.Sub(r.At)
		if age < p.UpWindow {
			upLimit = min(upLimit, r.Replicas)
		}
		if age < p.DownWindow {
			downLimit = max(downLimit, r.Replicas)
		}
	}
	desired := min(max(current, upLimit), downLimit)

	// Rate rules and bounds.
	lo, hi := p.Min, p.Max
	switch {
	case desired > current:
		if limit := scaleUpLimit(current, h.Changes, upRules, now); limit < hi {
			hi = max(limit, current)
		}
	case desired < current:
		if limit := scaleDownLimit(current, h.Changes, downRules, now); limit > lo {
			lo = min(limit, current)
		}
	}
	desired = clamp(desired, lo, hi)

	keep := max(p.UpWindow, p.DownWindow)
	var out History
	for _, r := range h.Recommendations {
		if now.Sub(r.At) < keep {
			out.Recommendations = append(out.Recommendations, r)
		}
	}
	out.Recommendations = append(out.Recommendations, Recommendation{At: now, Replicas: raw})
	var longest time.Duration
	for _, r := range append(append([]ScaleRule(nil), upRules...), downRules...) {
		longest = max(longest, r.Period)
	}
	for _, c := range h.Changes {
		if now.Sub(c.At) < longest {
			out.Changes = append(out.Changes, c)
		}
	}
	if desired != current {
		out.Changes = append(out.Changes, Recommendation{At: now, Replicas: desired - current})
	}
	return desired, out
}

// changesIn sums the scale-ups and scale-downs made within period.
func changesIn(changes []Recommendation, period time.Duration, now time.Time) (up, down int32) {
	for _, c := range changes {
		if now.Sub(c.At) >= period {
			continue
		}
		if c.Replicas > 0 {
			up += c.Replicas
		} else {
			down -= c.Replicas
		}
	}
	return up, down
}

// scaleUpLimit is the most replicas the rules allow now (calculateScaleUpLimitWithScalingRules).
func scaleUpLimit(current int32, changes []Recommendation, rules []ScaleRule, now time.Time) int32 {
	if len(rules) == 0 {
		return math.MaxInt32
	}
	limit := int32(math.MinInt32)
	for _, r := range rules {
		up, down := changesIn(changes, r.Period, now)
		start := current - up + down
		proposed := start + r.Value
		if r.Percent {
			proposed = int32(math.Ceil(float64(start) * (1 + float64(r.Value)/100)))
		}
		limit = max(limit, proposed)
	}
	return limit
}

// scaleDownLimit is the fewest replicas the rules allow now (calculateScaleDownLimitWithBehaviors).
func scaleDownLimit(current int32, changes []Recommendation, rules []ScaleRule, now time.Time) int32 {
	if len(rules) == 0 {
		return 0
	}
	limit := int32(math.MaxInt32)
	for _, r := range rules {
		up, down := changesIn(changes, r.Period, now)
		start := current - up + down
		proposed := start - r.Value
		if r.Percent {
			proposed = int32(float64(start) * (1 - float64(r.Value)/100))
		}
		limit = min(limit, proposed)
	}
	return limit
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
