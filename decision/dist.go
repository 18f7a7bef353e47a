package decision

import (
	"math"

	"gonum.org/v1/gonum/mathext"
)

// normalQuantile returns the q-quantile of the standard normal
// distribution.
func normalQuantile(q float64) float64 { return math.Sqrt2 * math.Erfinv(2*q-1) }

// nbQuantile sums a distribution's probabilities only while that starts
// above underflow (a log-probability of zero of at least minLogP0) and
// takes at most maxSteps steps to reach ten standard deviations above the
// mean; otherwise the moment-matched gamma distribution answers.
const (
	minLogP0 = -600
	maxSteps = 1000
)

// nbQuantile returns the q-quantile of the negative binomial distribution
// with the given mean and variance mean + phi·mean² (Poisson when phi is
// 0): the least k with P(X <= k) >= q. For large means, where the count
// is as good as continuous, it returns the quantile of the gamma
// distribution with the same mean and variance instead. It does not
// allocate.
func nbQuantile(mean, phi, q float64) float64 {
	if mean <= 0 {
		return 0
	}
	var logP0 float64
	r := 0.0
	if phi > 0 {
		r = 1 / phi
		logP0 = -r * math.Log1p(mean/r)
	} else {
		logP0 = -mean
	}
	v := mean + phi*mean*mean
	if logP0 < minLogP0 || mean+10*math.Sqrt(v) > maxSteps {
		shape, scale := mean*mean/v, v/mean
		return mathext.GammaIncRegInv(shape, q) * scale
	}
	p := math.Exp(logP0)
	cdf := p
	ratio := mean / (r + mean) // success odds of the negative binomial
	for k := 0.0; ; k++ {
		// The quantile is reached well within 2·maxSteps; the bound only
		// guards against a sum that rounding keeps below q.
		if cdf >= q || p == 0 && k > mean || k >= 2*maxSteps {
			return k
		}
		if r > 0 {
			p *= (k + r) / (k + 1) * ratio
		} else {
			p *= mean / (k + 1)
		}
		cdf += p
	}
}
