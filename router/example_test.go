package router_test

import (
	"fmt"

	"github.com/weirhq/weir/router"
)

func ExampleRoute_Choose() {
	r, err := router.Parse("fraud", []byte(`{
		"variants":[{"name":"stable","model":"fraud","version":"1","weight":90},
		            {"name":"canary","model":"fraud","version":"2","weight":10}],
		"sticky":{"header":"X-User-Id"},
		"match":[{"header":"X-Weir-Variant","value":"canary","variant":"canary"}]}`))
	if err != nil {
		panic(err)
	}
	headers := map[string]string{"X-User-Id": "user-42", "X-Weir-Variant": "canary"}
	get := func(h string) string { return headers[h] }

	// A tester forces the canary with a header.
	v := r.Choose(headers["X-User-Id"], true, get)
	fmt.Println(v.Name, v.Model, v.Version)

	// Without the header, the same user always gets the same variant.
	delete(headers, "X-Weir-Variant")
	first := r.Choose("user-42", true, get)
	fmt.Println(first == r.Choose("user-42", true, get))
	// Output:
	// canary fraud 2
	// true
}
