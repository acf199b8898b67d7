package fraud

import "testing"

func TestTrainedModelsCatchFraud(t *testing.T) {
	train := History(1, 20000, FeaturesV2)
	test := History(2, 10000, FeaturesV2)
	v2 := Train(train, 300)
	v1 := Train(History(1, 20000, FeaturesV1), 300)
	aucV2 := v2.AUC(test)
	aucV1 := v1.AUC(History(2, 10000, FeaturesV1))
	t.Logf("AUC on unseen history: v1 %.3f, v2 %.3f", aucV1, aucV2)
	if aucV1 < 0.8 || aucV2 < 0.9 {
		t.Errorf("models do not separate fraud: AUC v1 %.3f, v2 %.3f", aucV1, aucV2)
	}
	if aucV2 <= aucV1 {
		t.Errorf("v2 (with streaming aggregates) should beat v1: %.3f <= %.3f", aucV2, aucV1)
	}
	if _, err := v2.ONNX("fraud"); err != nil {
		t.Fatal(err)
	}
}

func TestEveryMerchantHasARisk(t *testing.T) {
	risk := MerchantRisk()
	for _, m := range append(append([]string{}, safeMerchants...), riskyMerchants...) {
		if _, ok := risk[m]; !ok {
			t.Errorf("merchant %q has no risk in route.json", m)
		}
	}
}
