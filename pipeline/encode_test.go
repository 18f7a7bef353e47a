package pipeline

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestAppendValue(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	values := []float64{0, 1, 0.5, 0.00004, 0.00005, 2.019, 123456.789012, 1e10 + 0.12345, 9.99995, 1e11, 1e14, 1e15, 1e300, -0.25, math.Inf(1)}
	for range 100000 {
		values = append(values, r.ExpFloat64()*math.Pow(10, float64(r.IntN(12)-4)))
	}
	for _, v := range values {
		want := strconv.AppendFloat(nil, math.Round(v*1e4)/1e4, 'f', -1, 64)
		if got := appendValue(nil, v); string(got) != string(want) {
			t.Fatalf("appendValue(%v) = %s, want %s", v, got, want)
		}
	}
}
