package canary

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/router"
)

// Start begins a rollout on route: the canary variant (added, or updated to
// spec's model/version, and placed last so sticky users only ever move from
// stable to canary) gets weight Steps[0] and the stable variant the rest.
// Bad specs: 400; unknown route: 404; a rollout already progressing or
// paused: 409. Any replica may call it.
func (c *Controller) Start(ctx context.Context, route string, spec Spec) (*Status, error) {
	spec = spec.withDefaults()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	r, ok := c.o.Routes.Get(route)
	if !ok {
		return nil, weirerr.NotFoundf("route %q not found: create it with PUT /v1/routes/%s before starting a rollout", route, route)
	}
	stable := ""
	for _, v := range r.Variants() {
		switch {
		case v.Name == spec.Variant:
		case stable == "":
			stable = v.Name
		case v.Weight > 0:
			return nil, weirerr.Invalidf("route %q has variant %q with weight %d: a rollout moves traffic between the stable variant %q and the canary %q only; set other variants to weight 0 first", route, v.Name, v.Weight, stable, spec.Variant)
		}
	}
	if stable == "" {
		return nil, weirerr.Invalidf("route %q has no variant other than %q to act as the stable variant", route, spec.Variant)
	}
	st, err := c.update(ctx, route, func(st *Status, exists bool) (*Transition, error) {
		if exists && st.State.active() {
			return nil, weirerr.Conflictf("route %q already has a %s rollout to %s at %d%%: abort or promote it first", route, st.State, st.Spec.target(), st.Weight)
		}
		from, gen := st.State, st.Generation
		now := time.Now().UTC()
		*st = Status{
			Route: route, Spec: spec, State: Progressing, Stable: stable,
			Step: 0, Weight: spec.Steps[0],
			Decision: "start", Reason: fmt.Sprintf("rollout started: %s as variant %q at %d%%", spec.target(), spec.Variant, spec.Steps[0]),
			StartedAt: now, StepStartedAt: now,
			Generation: gen, AppliedGeneration: gen, History: st.History,
		}
		return &Transition{From: from, Reason: st.Reason, TS: now}, nil
	})
	if err != nil {
		return nil, err
	}
	if fd, ok := c.o.Drift.(FeatureDrifter); ok && spec.DriftMode != DriftAbsolute {
		if sm, sv, ok := c.stableTarget(route, stable); ok {
			fd.ShareOutputReferences(sm, sv, spec.Model, spec.Version)
		}
	}
	return c.applyRoute(ctx, route, st)
}

// Status returns the rollout state of route (404 when it never had one).
func (c *Controller) Status(ctx context.Context, route string) (*Status, error) {
	e, err := c.kv.Get(ctx, routeKey(route))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, weirerr.NotFoundf("route %q has no rollout", route)
	}
	if err != nil {
		return nil, weirerr.Unavailablef("read rollout state of route %q: %w", route, err)
	}
	var st Status
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return nil, fmt.Errorf("rollout state of route %q is corrupt: %w", route, err)
	}
	return finish(&st), nil
}

// Promote makes the canary the stable variant now (stable points to the
// canary's model/version at weight 100; the canary variant is removed).
func (c *Controller) Promote(ctx context.Context, route string) (*Status, error) {
	return c.manual(ctx, route, "promote", func(st *Status) (*Transition, error) {
		if !st.State.active() {
			return nil, c.notActive(route, st, "promoted")
		}
		return c.toPromoted(st, "promoted by user"), nil
	})
}

// Pause stops analysis and keeps the current weights. Pausing a paused
// rollout changes nothing.
func (c *Controller) Pause(ctx context.Context, route string) (*Status, error) {
	return c.manual(ctx, route, "pause", func(st *Status) (*Transition, error) {
		switch st.State {
		case Paused:
			return nil, errUnchanged
		case Progressing:
			from := st.State
			st.State, st.Decision, st.Reason, st.Waiting = Paused, "pause", "paused by user", false
			return &Transition{From: from, Reason: st.Reason}, nil
		}
		return nil, c.notActive(route, st, "paused")
	})
}

// Resume continues a paused rollout; the current step's window starts over.
func (c *Controller) Resume(ctx context.Context, route string) (*Status, error) {
	return c.manual(ctx, route, "resume", func(st *Status) (*Transition, error) {
		switch st.State {
		case Progressing:
			return nil, errUnchanged
		case Paused:
			st.State, st.Decision, st.Reason = Progressing, "resume", "resumed by user"
			st.StepStartedAt = time.Now().UTC()
			return &Transition{From: Paused, Reason: st.Reason, TS: st.StepStartedAt}, nil
		}
		return nil, c.notActive(route, st, "resumed")
	})
}

// Abort sends 100% back to the stable variant at once (rolled_back).
func (c *Controller) Abort(ctx context.Context, route string) (*Status, error) {
	return c.manual(ctx, route, "abort", func(st *Status) (*Transition, error) {
		if !st.State.active() {
			return nil, c.notActive(route, st, "aborted")
		}
		return toRolledBack(st, "abort", "aborted by user"), nil
	})
}

func (c *Controller) notActive(route string, st *Status, verb string) error {
	return weirerr.Conflictf("rollout of route %q is %s: only a progressing or paused rollout can be %s", route, st.State, verb)
}

func (c *Controller) manual(ctx context.Context, route, op string, fn func(st *Status) (*Transition, error)) (*Status, error) {
	st, err := c.update(ctx, route, func(st *Status, exists bool) (*Transition, error) {
		if !exists {
			return nil, weirerr.NotFoundf("route %q has no rollout to %s", route, op)
		}
		return fn(st)
	})
	if err != nil {
		return nil, err
	}
	return c.applyRoute(ctx, route, st)
}

func (c *Controller) toPromoted(st *Status, reason string) *Transition {
	from := st.State
	now := time.Now().UTC()
	st.State, st.Weight, st.Step = Promoted, 100, len(st.Spec.Steps)-1
	st.Decision, st.Reason, st.Waiting, st.FinishedAt = "promote", reason, false, &now
	return &Transition{From: from, Reason: reason}
}

func toRolledBack(st *Status, decision, reason string) *Transition {
	from := st.State
	now := time.Now().UTC()
	st.State, st.Weight = RolledBack, 0
	st.Decision, st.Reason, st.Waiting, st.FinishedAt = decision, reason, false, &now
	return &Transition{From: from, Reason: reason}
}

// Reconcile looks at route's rollout once, as the lease holder's loop does
// every tick: it finishes a pending route change and, when the current
// step's interval has elapsed, analyses the canary over [StepStartedAt, now]
// and advances, promotes, rolls back or waits. It is level-based: calling it
// again with nothing changed does nothing. next is how long until it has
// something to do (0: nothing scheduled). Only the lease holder should call
// it; state writes are compare-and-swap either way.
func (c *Controller) Reconcile(ctx context.Context, route string) (next time.Duration, err error) {
	st, err := c.Status(ctx, route)
	if weirerr.KindOf(err) == weirerr.NotFound {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if _, ok := c.o.Routes.Get(route); !ok {
		// The route was deleted under the rollout: end it rather than fail
		// every tick. There is no route left to write weights to.
		_, err := c.update(ctx, route, func(st *Status, exists bool) (*Transition, error) {
			if !exists || (!st.State.active() && st.Generation == st.AppliedGeneration) {
				return nil, errUnchanged
			}
			var tr *Transition
			if st.State.active() {
				tr = toRolledBack(st, "rollback", "route deleted")
				st.AppliedGeneration = st.Generation + 1 // nothing to apply
			} else {
				st.AppliedGeneration = st.Generation
			}
			return tr, nil
		})
		return 0, err
	}
	if st.Generation != st.AppliedGeneration {
		if st, err = c.applyRoute(ctx, route, st); err != nil {
			return c.o.Tick, err
		}
	}
	if st.State != Progressing {
		return 0, nil
	}
	now := time.Now().UTC()
	interval := time.Duration(st.Spec.Interval)
	if due := st.StepStartedAt.Add(interval); now.Before(due) {
		return due.Sub(now), nil
	}
	before := st
	st, err = c.update(ctx, route, func(st *Status, _ bool) (*Transition, error) {
		if st.State != Progressing || st.Generation != before.Generation {
			return nil, errUnchanged // someone acted meanwhile; next tick looks again
		}
		return c.analyze(route, st, now)
	})
	if err != nil {
		return c.o.Tick, err
	}
	if st.Generation != st.AppliedGeneration {
		if st, err = c.applyRoute(ctx, route, st); err != nil {
			return c.o.Tick, err
		}
	}
	if st.State == Progressing && st.Waiting {
		return c.o.Tick, nil
	}
	if st.State == Progressing {
		return interval, nil
	}
	return 0, nil
}

// analyze judges the canary over [StepStartedAt, now] and mutates st.
func (c *Controller) analyze(route string, st *Status, now time.Time) (*Transition, error) {
	from, to := st.StepStartedAt, now
	st.AnalyzedAt = &now
	cm, err := c.o.Metrics.VariantMetrics(route, st.Spec.Variant, from, to)
	if err != nil {
		reason := fmt.Sprintf("waiting: canary metrics unavailable: %v", err)
		if st.Reason == reason {
			return nil, errUnchanged
		}
		st.Decision, st.Reason, st.Waiting = "wait", reason, true
		return nil, nil
	}
	sm, err := c.o.Metrics.VariantMetrics(route, st.Stable, from, to)
	if err != nil {
		sm = VariantMetrics{}
	}
	cs := stats(cm)
	st.Variants = map[string]VariantStats{st.Spec.Variant: cs, st.Stable: stats(sm)}
	st.Gates = nil
	st.Drift, st.CanaryDrift, st.StableDrift, st.DriftFeature = nil, nil, nil, ""
	if c.o.Drift != nil {
		c.judgeDrift(route, st)
	}
	weight := st.Weight
	need := max(st.Spec.MinRequests, 1)
	if cm.served() < need {
		reason := fmt.Sprintf("waiting: %d of %d requests", cm.served(), need)
		if cm.ClientErrors > 0 {
			reason += fmt.Sprintf(" (%d client errors not counted)", cm.ClientErrors)
		}
		if st.Waiting && st.Reason == reason {
			return nil, errUnchanged
		}
		st.Decision, st.Reason, st.Waiting = "wait", reason, true
		return nil, nil
	}
	st.Waiting = false
	s := st.Spec
	if s.MaxErrorRate != nil && !st.judge("error_rate", *s.MaxErrorRate, cs.ErrorRate) {
		return toRolledBack(st, "rollback", fmt.Sprintf("error rate %.4g over max_error_rate %v at %d%% (%d of %d canary requests failed)", cs.ErrorRate, *s.MaxErrorRate, weight, cm.Errors, cm.served())), nil
	}
	if s.MaxP99Ms != nil && !st.judge("p99_ms", *s.MaxP99Ms, cs.P99Ms) {
		return toRolledBack(st, "rollback", fmt.Sprintf("p99 %.4gms over max_p99_ms %v at %d%% (%d canary requests)", cs.P99Ms, *s.MaxP99Ms, weight, cm.served())), nil
	}
	if limit, on := s.answerLimit(); on {
		if reason, wait := c.judgeAnswers(route, st, now, limit); reason != "" {
			if wait {
				if st.Waiting && st.Reason == reason {
					return nil, errUnchanged
				}
				st.Decision, st.Reason, st.Waiting = "wait", reason, true
				return nil, nil
			}
			return toRolledBack(st, "rollback", reason), nil
		}
	} else {
		st.Gates = append(st.Gates, Gate{Gate: "answers", Note: `off: max_drift "off"`})
	}
	// The drift monitor's figures compare each version's latest window
	// with a reference, windows that cover different periods for the two
	// variants; relative to the stable's they are shown, not judged (the
	// answers gate judges the canary against the stable over one period).
	// drift_mode "absolute" judges the canary's own drift, inputs included.
	if s.DriftMode == DriftAbsolute && s.MaxDrift != nil && !s.MaxDrift.Off {
		if st.Drift == nil {
			st.Gates = append(st.Gates, Gate{Gate: "drift", Limit: s.MaxDrift.Value, Note: "not judged: no drift figure yet (no reference, or too few events)"})
		} else if !st.judge("drift", s.MaxDrift.Value, *st.Drift) {
			return toRolledBack(st, "rollback", fmt.Sprintf("drift %.4g over max_drift %v at %d%%", *st.Drift, s.MaxDrift.Value, weight)), nil
		}
	}
	passed := fmt.Sprintf("analysis passed at %d%%: %d requests, error rate %.4g, p99 %.4gms", weight, cm.served(), cs.ErrorRate, cs.P99Ms)
	if cm.ClientErrors > 0 {
		passed += fmt.Sprintf(" (%d client errors not judged)", cm.ClientErrors)
	}
	if st.Drift != nil {
		passed += fmt.Sprintf(", drift %.4g", *st.Drift)
	}
	passed += "; " + st.gateSummary()
	if st.Step+1 >= len(st.Spec.Steps) {
		return c.toPromoted(st, passed+"; promoted"), nil
	}
	st.Step++
	st.Weight = st.Spec.Steps[st.Step]
	st.StepStartedAt = now
	st.Decision, st.Reason = "advance", fmt.Sprintf("%s; moving to %d%%", passed, st.Weight)
	return &Transition{From: Progressing, Reason: st.Reason, TS: now}, nil
}

// judge records a judged gate and reports whether it passed.
func (st *Status) judge(gate string, limit, value float64) bool {
	st.Gates = append(st.Gates, Gate{Gate: gate, Limit: limit, Value: &value, Passed: value <= limit})
	return value <= limit
}

// gateSummary lists the gates judged and those that were not.
func (st *Status) gateSummary() string {
	var judged, not []string
	for _, g := range st.Gates {
		if g.Value != nil {
			judged = append(judged, g.Gate)
		} else {
			not = append(not, g.Gate+" ("+g.Note+")")
		}
	}
	out := "judged: none"
	if len(judged) > 0 {
		out = "judged: " + strings.Join(judged, ", ")
	}
	if len(not) > 0 {
		out += "; not judged: " + strings.Join(not, ", ")
	}
	return out
}

// judgeAnswers is the answers gate: the canary's answers against the stable
// variant's, both over the current step's window (the same period under one
// split, so the same traffic: a shift in the inputs that both see moves
// both alike), per numeric output, as a PSI (Stats.AnswerShifts). It
// records the gate in st and returns a rollback reason, or with wait a
// reason to wait: at the last step that still sends the stable variant
// traffic, the canary is not moved on before the gate could judge it.
func (c *Controller) judgeAnswers(route string, st *Status, now time.Time, limit float64) (reason string, wait bool) {
	g := Gate{Gate: "answers", Limit: limit}
	defer func() { st.Gates = append(st.Gates, g) }()
	ac, ok := c.o.Metrics.(AnswerComparer)
	if !ok {
		g.Note = "not judged: no live stats to compare answers with"
		return "", false
	}
	if st.Weight >= 100 {
		g.Note = "not judged at 100%: the stable variant gets no traffic to compare with"
		return "", false
	}
	shifts := ac.AnswerShifts(route, st.Spec.Variant, st.Stable, st.StepStartedAt, now)
	names := make([]string, 0, len(shifts))
	for name := range shifts {
		names = append(names, name)
	}
	slices.Sort(names)
	best, output := 0.0, ""
	var most int64 // the canary's answers of its best-counted output
	for _, name := range names {
		sh := shifts[name]
		most = max(most, min(sh.Count, sh.BaseCount))
		if sh.Count < MinAnswers || sh.BaseCount < MinAnswers {
			continue
		}
		if output == "" || sh.PSI > best {
			best, output = sh.PSI, name
			g.Note = fmt.Sprintf("output %s, %d canary and %d stable answers in this step", name, sh.Count, sh.BaseCount)
		}
	}
	if output == "" {
		// Too few answers yet, or none numeric (a model without a numeric
		// output never has any: max_drift "off" is for it).
		g.Note = fmt.Sprintf("not judged yet: fewer than %d numeric answers of each variant in this step", MinAnswers)
		next := st.Step + 1
		if next >= len(st.Spec.Steps) || st.Spec.Steps[next] == 100 {
			return fmt.Sprintf("waiting: %d of %d numeric answers of each variant in this step to compare the canary's with the stable's (max_drift %v; \"off\" skips this)", most, MinAnswers, limit), true
		}
		return "", false
	}
	g.Value, g.Passed = &best, best <= limit
	if g.Passed {
		return "", false
	}
	return fmt.Sprintf("answers differ from the stable's: PSI %.4g on output %s over max_drift %v at %d%% (%d canary and %d stable answers in this step)",
		best, output, limit, st.Weight, shifts[output].Count, shifts[output].BaseCount), false
}

// judgeDrift sets the drift figures of st: the canary's own (absolute),
// and, in relative mode when the stable version's drift is known, the value
// judged is the largest excess of the canary's drift over the stable's on
// the same feature or output (or of their largest drifts, for a Drift
// without per-feature values). Drift the stable version sees as much as the
// canary is not the canary's doing.
func (c *Controller) judgeDrift(route string, st *Status) {
	cd, ok := c.o.Drift.MaxDrift(st.Spec.Model, st.Spec.Version)
	if !ok {
		return
	}
	st.CanaryDrift = &cd
	judged := cd
	if st.Spec.DriftMode != DriftAbsolute {
		if rel, feature, sd, ok := c.relativeDrift(route, st, cd); ok {
			judged, st.StableDrift, st.DriftFeature = rel, &sd, feature
		}
	}
	st.Drift = &judged
}

func (c *Controller) relativeDrift(route string, st *Status, canaryMax float64) (rel float64, feature string, stableMax float64, ok bool) {
	sm, sv, found := c.stableTarget(route, st.Stable)
	if !found {
		return 0, "", 0, false
	}
	fd, perFeature := c.o.Drift.(FeatureDrifter)
	if !perFeature {
		s, known := c.o.Drift.MaxDrift(sm, sv)
		if !known {
			return 0, "", 0, false
		}
		return max(0, canaryMax-s), "", s, true
	}
	cf, ok1 := fd.FeatureDrifts(st.Spec.Model, st.Spec.Version)
	sf, ok2 := fd.FeatureDrifts(sm, sv)
	if !ok1 || !ok2 {
		return 0, "", 0, false
	}
	names := make([]string, 0, len(cf))
	for name := range cf {
		names = append(names, name)
	}
	slices.Sort(names) // ties go to the same feature every time
	for _, name := range names {
		d := cf[name] // measured against the stable version's answers already
		if !strings.HasPrefix(name, VsStablePrefix) {
			s, both := sf[name]
			if !both {
				continue // not comparable: only the canary has it
			}
			stableMax = max(stableMax, s)
			d -= s
		}
		if !ok || d > rel {
			rel, feature, ok = d, name, true
		}
	}
	return max(rel, 0), feature, stableMax, ok
}

// stableTarget is the model and version of the route's stable variant.
func (c *Controller) stableTarget(route, stable string) (model, version string, ok bool) {
	r, found := c.o.Routes.Get(route)
	if !found {
		return "", "", false
	}
	for _, v := range r.Variants() {
		if v.Name == stable {
			return v.Model, v.Version, v.Model != ""
		}
	}
	return "", "", false
}

// applyRoute writes the weights the rollout state calls for into the route,
// then records the generation it applied. The state is re-read inside the
// route's compare-and-swap so that, whatever the interleaving of replicas,
// the last route write reflects the latest state.
func (c *Controller) applyRoute(ctx context.Context, route string, st *Status) (*Status, error) {
	var applied int
	err := c.o.Routes.Update(ctx, route, func(cfg router.Config) (router.Config, error) {
		cur, err := c.Status(ctx, route)
		if err != nil {
			return cfg, err
		}
		applied = cur.Generation
		return desiredConfig(cur, cfg)
	})
	if err != nil {
		st.Reason = fmt.Sprintf("%s (route change pending: %v)", st.Reason, err)
		return st, fmt.Errorf("apply rollout of route %q to the route: %w", route, err)
	}
	return c.update(ctx, route, func(cur *Status, exists bool) (*Transition, error) {
		if !exists || cur.AppliedGeneration >= applied {
			return nil, errUnchanged
		}
		cur.AppliedGeneration = applied
		return nil, nil
	})
}

// desiredConfig is the route's configuration for a rollout state: its
// variants' weights and, once promoted, the canary's model and chains in
// the stable variant.
func desiredConfig(st *Status, cfg router.Config) (router.Config, error) {
	name := st.Spec.Variant
	var canary *router.Variant
	out := make([]router.Variant, 0, len(cfg.Variants)+1)
	stableIdx, others := -1, 0
	for _, v := range cfg.Variants {
		switch v.Name {
		case name:
			cv := v
			canary = &cv
			continue
		case st.Stable:
			stableIdx = len(out)
		default:
			others += v.Weight
		}
		out = append(out, v)
	}
	if stableIdx < 0 {
		return cfg, weirerr.Conflictf("route %q no longer has the stable variant %q of its rollout", st.Route, st.Stable)
	}
	found := canary != nil
	if !found {
		canary = &router.Variant{Name: name}
	}
	canary.Model, canary.Version = st.Spec.Model, st.Spec.Version
	stable := &out[stableIdx]
	switch st.State {
	case Progressing, Paused:
		canary.Weight = st.Weight
	case RolledBack:
		canary.Weight = 0
	case Promoted:
		stable.Model, stable.Version = st.Spec.Model, st.Spec.Version
		if found { // not yet applied: once applied, the canary may be gone
			// A canary of plugin versions: the stable variant now runs the
			// canary's chains (nil: the route's), folded into the route's
			// where no other variant runs the route's.
			stable.Plugins, stable.Postprocess = canary.Plugins, canary.Postprocess
			foldChain(&cfg.Plugins, &stable.Plugins, out, stableIdx, func(v *router.Variant) *[]router.PluginRef { return v.Plugins })
			foldChain(&cfg.Postprocess, &stable.Postprocess, out, stableIdx, func(v *router.Variant) *[]router.PluginRef { return v.Postprocess })
		}
		canary.Weight = 0
		referenced := false
		for _, m := range cfg.Match {
			referenced = referenced || m.Variant == name
		}
		if !referenced {
			canary = nil // the canary is now the stable variant
		}
	}
	cw := 0
	if canary != nil {
		cw = canary.Weight
	}
	stable.Weight = 100 - cw - others
	if stable.Weight < 0 {
		return cfg, weirerr.Conflictf("route %q: other variants hold %d%%, leaving no room for the canary at %d%%", st.Route, others, cw)
	}
	if canary != nil {
		out = append(out, *canary) // last: see router's bucket layout
	}
	cfg.Variants = out
	return cfg, nil
}

// foldChain moves the promoted stable variant's own chain (*override) into
// the route's (*route) when no other variant of vs runs the route's chain,
// so the route names the versions it serves (and an old plugin version it
// no longer runs can be deleted). A promoted canary still matched by a
// header rule keeps its own chain.
func foldChain(route *[]router.PluginRef, override **[]router.PluginRef, vs []router.Variant, stableIdx int, chainOf func(*router.Variant) *[]router.PluginRef) {
	if *override == nil {
		return
	}
	for i := range vs {
		if i != stableIdx && chainOf(&vs[i]) == nil {
			return // another variant runs the route's chain: keep it
		}
	}
	*route, *override = **override, nil
}
