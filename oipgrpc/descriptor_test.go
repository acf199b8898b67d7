package oipgrpc_test

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/weirhq/weir/oipgrpc/inferencepb"
)

// TestDescriptorMatchesOfficialProtos checks weir's inference.proto field by
// field against the official files in testdata: every message they declare
// exists in weir with the same fields (name, number, type, cardinality, oneof)
// and no others, and every RPC they declare that weir serves takes and returns
// the same messages. A client generated from either file then talks to weir.
func TestDescriptorMatchesOfficialProtos(t *testing.T) {
	fd := pb.File_inference_proto
	for _, file := range []string{"open_inference_grpc.proto", "grpc_service_repository.proto"} {
		src, err := os.ReadFile("testdata/" + file)
		if err != nil {
			t.Fatal(err)
		}
		official := parseProto(t, string(src))
		t.Run(file, func(t *testing.T) {
			for _, name := range sortedKeys(official.messages) {
				md := findMessage(fd.Messages(), name)
				if md == nil {
					t.Errorf("weir lacks message %s", name)
					continue
				}
				want := official.messages[name]
				got := weirFields(md)
				for _, f := range sortedKeys(want) {
					if got[f] != want[f] {
						t.Errorf("%s.%s: weir has %q, official %q", name, f, got[f], want[f])
					}
				}
				for _, f := range sortedKeys(got) {
					if _, ok := want[f]; !ok {
						t.Errorf("%s.%s: weir has %q, the official message has no such field", name, f, got[f])
					}
				}
			}
			svc := fd.Services().ByName("GRPCInferenceService")
			for _, rpc := range sortedKeys(official.rpcs) {
				m := svc.Methods().ByName(protoreflect.Name(rpc))
				if m == nil {
					t.Errorf("weir does not serve rpc %s", rpc)
					continue
				}
				if got := fmt.Sprintf("%s -> %s", m.Input().Name(), m.Output().Name()); got != official.rpcs[rpc] {
					t.Errorf("rpc %s: weir has %s, official %s", rpc, got, official.rpcs[rpc])
				}
			}
		})
	}
}

// findMessage finds a message by its dotted name (Outer.Inner) in ms.
func findMessage(ms protoreflect.MessageDescriptors, name string) protoreflect.MessageDescriptor {
	outer, inner, nested := strings.Cut(name, ".")
	md := ms.ByName(protoreflect.Name(outer))
	if md == nil || !nested {
		return md
	}
	return findMessage(md.Messages(), inner)
}

// weirFields describes md's fields as parseProto does: field name ->
// "[repeated |map<K, V> |oneof O ]type = number".
func weirFields(md protoreflect.MessageDescriptor) map[string]string {
	out := map[string]string{}
	fs := md.Fields()
	for i := 0; i < fs.Len(); i++ {
		f := fs.Get(i)
		var s string
		switch {
		case f.IsMap():
			s = fmt.Sprintf("map<%s, %s>", typeName(f.MapKey()), typeName(f.MapValue()))
		case f.Cardinality() == protoreflect.Repeated:
			s = "repeated " + typeName(f)
		default:
			s = typeName(f)
		}
		if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() {
			s = "oneof " + string(o.Name()) + " " + s
		}
		out[string(f.Name())] = fmt.Sprintf("%s = %d", s, f.Number())
	}
	return out
}

func typeName(f protoreflect.FieldDescriptor) string {
	switch f.Kind() {
	case protoreflect.MessageKind:
		return string(f.Message().Name())
	case protoreflect.EnumKind:
		return string(f.Enum().Name())
	}
	return f.Kind().String()
}

type protoFile struct {
	messages map[string]map[string]string // dotted message name -> field -> description
	rpcs     map[string]string            // rpc -> "In -> Out"
}

var (
	protoComment = regexp.MustCompile(`//[^\n]*`)
	protoToken   = regexp.MustCompile(`map\s*<\s*\w+\s*,\s*[\w.]+\s*>|[\w.]+|[{}();=]`)
)

// parseProto reads the subset of proto3 the official files use: nested
// messages, oneofs, scalar, message, repeated and map fields, and a service
// of unary RPCs. Anything else fails the test rather than being skipped.
func parseProto(t *testing.T, src string) protoFile {
	t.Helper()
	toks := protoToken.FindAllString(protoComment.ReplaceAllString(src, ""), -1)
	p := protoFile{messages: map[string]map[string]string{}, rpcs: map[string]string{}}
	type scope struct{ kind, name string }
	var stack []scope
	msgName := func() string {
		var parts []string
		for _, s := range stack {
			if s.kind == "message" {
				parts = append(parts, s.name)
			}
		}
		return strings.Join(parts, ".")
	}
	oneof := func() string {
		if n := len(stack); n > 0 && stack[n-1].kind == "oneof" {
			return "oneof " + stack[n-1].name + " "
		}
		return ""
	}
	for i := 0; i < len(toks); i++ {
		switch tok := toks[i]; tok {
		case "syntax", "package", "option", "import":
			for toks[i] != ";" {
				i++
			}
		case "message", "oneof", "service":
			stack = append(stack, scope{tok, toks[i+1]})
			if toks[i+2] != "{" {
				t.Fatalf("parseProto: %s %s not followed by {", tok, toks[i+1])
			}
			i += 2
			if tok == "message" {
				p.messages[msgName()] = map[string]string{}
			}
		case "}":
			stack = stack[:len(stack)-1]
		case "rpc":
			// rpc Name ( In ) returns ( Out ) { }
			if len(toks) < i+10 || toks[i+5] != "returns" {
				t.Fatalf("parseProto: unexpected rpc form near %v", toks[i:min(i+10, len(toks))])
			}
			p.rpcs[toks[i+1]] = toks[i+3] + " -> " + toks[i+7]
			i += 8
			if toks[i+1] == "{" {
				i += 2
			}
			if toks[i+1] == ";" {
				i++
			}
		default:
			// [repeated] type name = number ;
			if len(stack) == 0 || stack[len(stack)-1].kind == "service" {
				t.Fatalf("parseProto: unexpected %q", tok)
			}
			prefix := oneof()
			if tok == "repeated" {
				prefix += "repeated "
				i++
			}
			typ := toks[i]
			if strings.HasPrefix(typ, "map") {
				typ = strings.Replace(strings.Join(strings.Fields(typ), ""), ",", ", ", 1)
			} else if j := strings.LastIndexByte(typ, '.'); j >= 0 {
				typ = typ[j+1:] // a nested message's type by its own name, as weirFields gives it
			}
			if len(toks) < i+5 || toks[i+2] != "=" || toks[i+4] != ";" {
				t.Fatalf("parseProto: unexpected field form near %v", toks[i:min(i+5, len(toks))])
			}
			p.messages[msgName()][toks[i+1]] = fmt.Sprintf("%s%s = %s", prefix, typ, toks[i+3])
			i += 4
		}
	}
	if len(stack) != 0 || len(p.messages) == 0 {
		t.Fatalf("parseProto: unbalanced braces or no messages (%d open)", len(stack))
	}
	return p
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
