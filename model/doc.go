// Package model holds the forecasters: the Forecaster and Learner
// interfaces, the classical baselines and the global learners.
//
// # Overview
//
// A forecaster reads a series' history as plain values (Input: recent
// closed-bucket quantities with prices, promotions and the bucket index of
// the first) and writes a multi-step Forecast: for each of Horizon steps a
// mean and one value per quantile level, never negative, quantiles never
// crossing. The classical forecasters (naive, seasonal naive, 28-bucket
// mean, exponential smoothing, TSB for intermittent demand) forecast one
// series at a time from its history alone. Global models implement
// BatchForecaster and Learner: they forecast all series of a partition at
// once and learn online at every bucket close.
//
// The package is pure computation: no Kafka, no Badger, no goroutines of
// its own. Models that keep state marshal it to versioned bytes.
//
// # Global learners
//
// The global learners (see Learners: LSTM, GRU, Transformer) share
// everything but their network: inputs, head, loss, optimizer, weight
// averaging and checkpoint format.
//
// Inputs. Each of the L input steps of a series (bucket index in.Start+i)
// has these features, in this order:
//
//  0. the quantity scaled by the series' scale, y/s, where s = 1 + the
//     mean of the window's real (unpadded) quantities, negative means
//     counting as 0 (DeepAR scaling; outputs are multiplied back by s);
//  1. the real-step mask: 1 for a real step, 0 for left padding;
//  2. the price relative to the mean non-zero price of the window's real
//     steps, capped at 10; 0 when the price is unknown (zero, missing or
//     not finite);
//  3. the promotion share, clamped to [0, 1] (0 when missing);
//  4. the zero-sale indicator: 1 when y ≤ 0;
//  5. the buckets since the last sale (y > 0), min(n, 28)/28: 0 on a
//     sale, 1/28 the bucket after, …; sales are looked for up to 28
//     buckets before the window, and a series that has not sold since Y
//     began counts from the bucket before Y[0];
//  6. …: the Calendar's covariates of the bucket, or, when the Calendar
//     is nil, sin and cos of 2π·k/P with k = bucket mod in.Period and
//     P = in.Period (1 when not positive).
//
// So there are 6 + Calendar.Width() features, or 8 without a Calendar.
// Padded steps have all features zero, and no learner lets them
// influence a forecast.
//
// Head. The network's final representation h of a window feeds a linear
// head with, for each of the H steps, a mean pre-activation a and one
// pre-activation b_j per quantile level. The forecast is
// mean = s·softplus(a), lowest quantile s·b_0 and each next quantile the
// previous plus s·softplus(b_j), all clamped at zero, so values are
// non-negative and quantiles never cross. The lowest quantile is linear
// so that it can reach exactly zero: on intermittent demand the 10%
// quantile is usually no sales at all.
//
// Loss. The training loss of an example is, averaged over the H steps,
// the squared error of the mean plus the pinball loss of every quantile,
// in scaled units (target y/s); a batch's loss is the mean over its
// examples weighted by s / mean(s), so that series with more volume count
// for more, as they do in volume-weighted metrics such as WRMSSE.
//
// Training. Gradients come from full backpropagation (through time, for
// the recurrent learners), are clipped to LearnerConfig.ClipNorm in
// global norm and applied by AdamW; a step whose loss, gradient or
// result is not finite is skipped and changes nothing. Forecasts run on
// a moving average of the trained weights (see LearnerConfig.Average).
// Training and forecasting run in float32 on the AVX2 kernels of
// model/internal/kern, on one goroutine: no learner starts goroutines.
//
// Explanations. Every global learner is an Explainer: integrated
// gradients of its mean forecast of the next buckets, summed into input
// groups (Group), on a float64 copy of its forecasting weights (see
// Explainer for the baseline and the groups).
//
// # Concurrency
//
// Forecasters keep scratch buffers and are not safe for concurrent use:
// each partition's goroutine owns its own. An Attribution, once prepared
// on the learner's goroutine, owes the learner nothing and may be used on
// another.
//
// # Invariants
//
// Every Forecast written by a forecaster passes (*Forecast).Check.
package model
