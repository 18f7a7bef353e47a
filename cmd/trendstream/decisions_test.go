package main

import "testing"

func TestConsoleReplenishment(t *testing.T) {
	const head = `{"series":"S/K","policy":{"lead_time":3,"review_period":7,"service_level":0.9,"pack_size":6},` +
		`"cycle_demand":{"buckets":10,"mean":40},"reorder_point":20,"safety_stock":8,"order_up_to":48,`
	for _, tc := range []struct {
		name, record string
		onHand       *float64
		order        float64
	}{
		{"no stock", head + `"stock":null,"order_qty":null}`, nil, 0},
		{"stock", head + `"stock":{"on_hand":5,"on_order":7},"order_qty":36}`, ptr(5.0), 36},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := consoleReplenishment([]byte(tc.record))
			if err != nil {
				t.Fatal(err)
			}
			if r.LeadTime != 3 || r.ServiceLevel != 0.9 || r.Demand != 40 || r.SafetyStock != 8 || r.ReorderPoint != 20 || r.OrderUpTo != 48 {
				t.Errorf("plan fields %+v", r)
			}
			if (r.OnHand == nil) != (tc.onHand == nil) || r.OnHand != nil && *r.OnHand != *tc.onHand || r.OrderQty != tc.order {
				t.Errorf("on hand %v, order %v; want %v, %v", r.OnHand, r.OrderQty, tc.onHand, tc.order)
			}
		})
	}
	if _, err := consoleReplenishment([]byte("{")); err == nil {
		t.Error("a broken record decodes")
	}
}

func ptr[T any](v T) *T { return &v }
