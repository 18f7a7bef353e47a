package model

import "math"

// Standing is how an Ensemble weighs a series' candidates as of the
// series' last Update: the mix its published forecast was made with, and
// the errors behind it.
type Standing struct {
	// Weights holds each candidate's weight in the mean, summing to 1,
	// and Quantiles the candidate whose quantiles are published, as in
	// the last Update's Mix.
	Weights   []float64
	Quantiles int
	// Errors holds each candidate's error: the root of the mean over the
	// horizons of its exponentially weighted squared errors (see
	// Ensemble), NaN while it has not been scored at every horizon.
	Errors []float64
	// Scores holds each candidate's fewest scores at any horizon; it
	// takes part once they reach the ensemble's minimum.
	Scores []int
	// MinScores is that minimum.
	MinScores int
}

// Standing returns the weighing of the series with state st given the
// candidates' eligibility, without changing st. Until the next Update of
// the series, with the eligibility of the last, its Weights and Quantiles
// are those the last Update published.
func (e *Ensemble) Standing(st *EnsembleState, eligible []bool) Standing {
	n, nh := e.cfg.Candidates, len(e.cfg.Horizons)
	s := Standing{
		Weights: make([]float64, n), Errors: make([]float64, n), Scores: make([]int, n),
		MinScores: e.cfg.MinScores,
	}
	mix := Mix{Weights: s.Weights, Quantiles: -1}
	e.weigh(st, eligible, &mix)
	s.Quantiles = mix.Quantiles
	for c := range n {
		var mse float64
		s.Scores[c] = math.MaxInt
		for k := range nh {
			s.Scores[c] = min(s.Scores[c], int(st.scores[c*nh+k]))
			mse += st.err[c*nh+k]
		}
		s.Errors[c] = math.NaN()
		if s.Scores[c] > 0 {
			s.Errors[c] = math.Sqrt(mse / float64(nh))
		}
	}
	return s
}
