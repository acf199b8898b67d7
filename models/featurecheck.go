package models

import "errors"

// CheckFeatures reports every one of features that row lacks or holds with
// a wrong type, by the rules PackFeatures reads them with (a *FeatureError
// each, joined; nil when all can be read). It needs no loaded version, so
// tools can check a plugin's output against a model's feature list:
// `weir plugin run --model`.
func CheckFeatures(features []string, row map[string]any) error {
	var errs []error
	for _, f := range features {
		if _, err := featureValue(row, f, 0, 1); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
