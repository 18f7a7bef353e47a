package model

import "math"

// EnsembleCandidate is what an EnsembleState holds about one candidate:
// the forecast it made at the state's latest update, kept for scoring,
// and its scores so far. It is read for people (the web console); the
// ensemble itself never needs it.
type EnsembleCandidate struct {
	// Means holds the candidate's mean at each of the ensemble's horizons
	// (see Ensemble.Horizons), made at the latest update; NaN where the
	// forecast was shorter or undefined.
	Means []float64
	// Quantiles holds its next-bucket quantiles made at the latest
	// update, one per level of the forecasts; empty before any update.
	Quantiles []float64
	// WindowTotal is the sum of its first Window means made at the latest
	// update: the total Mix.Errors scores.
	WindowTotal float64
	// HorizonRMSE holds, per horizon, the root of the exponentially
	// weighted mean squared error of its step-h means; NaN before the
	// first score.
	HorizonRMSE []float64
	// RMSE is the root of the mean of the horizons' weighted mean squared
	// errors: what its weight in the mean comes from. NaN until every
	// horizon has a score.
	RMSE float64
	// Scores is the fewest scores at any horizon; a candidate takes part
	// in the mean from MinScores on.
	Scores int
	// Pinball is the exponentially weighted pinball loss of its
	// next-bucket quantiles, summed over the levels, and PinballScores
	// the number of scores; NaN before the first.
	Pinball       float64
	PinballScores int
}

// Horizons returns the steps ahead the ensemble scores at. The slice is
// shared and must not be modified.
func (e *Ensemble) Horizons() []int { return e.cfg.Horizons }

// Window returns the number of buckets whose forecast totals the
// ensemble scores (see EnsembleCandidate.WindowTotal).
func (e *Ensemble) Window() int { return e.cfg.Window }

// Inspect returns what st holds about each candidate, and the bucket of
// its latest update (ok is false when st was never updated; the
// candidates' forecasts are then NaN and empty). It allocates its result
// and leaves st unchanged, so it may run on a state decoded for reading
// while the owner's copy moves on.
func (e *Ensemble) Inspect(st *EnsembleState) (latest int64, ok bool, cands []EnsembleCandidate) {
	n, hs, w := e.cfg.Candidates, e.cfg.Horizons, e.cfg.Window
	nh := len(hs)
	latest = st.qAt
	ok = latest != math.MinInt64 && st.at[mod(latest, e.span)] == latest
	nq := len(st.q) / n
	cands = make([]EnsembleCandidate, n)
	for c := range cands {
		cd := &cands[c]
		cd.Means = make([]float64, nh)
		cd.HorizonRMSE = make([]float64, nh)
		cd.Scores = math.MaxInt32
		cd.WindowTotal = math.NaN()
		var mse float64
		off := 0
		for k, h := range hs {
			cd.Means[k] = math.NaN()
			if ok {
				cd.Means[k] = float64(st.fc[c*e.ring+off+mod(latest, h)])
			}
			off += h
			s := int(st.scores[c*nh+k])
			cd.Scores = min(cd.Scores, s)
			cd.HorizonRMSE[k] = math.NaN()
			if s > 0 {
				cd.HorizonRMSE[k] = math.Sqrt(st.err[c*nh+k])
			}
			mse += st.err[c*nh+k]
		}
		cd.RMSE = math.NaN()
		if cd.Scores > 0 {
			cd.RMSE = math.Sqrt(mse / float64(nh))
		}
		if ok {
			cd.WindowTotal = st.total[c*w+mod(latest, w)]
			cd.Quantiles = append([]float64(nil), st.q[c*nq:(c+1)*nq]...)
		}
		cd.Pinball = math.NaN()
		if cd.PinballScores = int(st.qScore[c]); cd.PinballScores > 0 {
			cd.Pinball = st.qErr[c]
		}
	}
	return latest, ok, cands
}
