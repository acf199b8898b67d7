package models

// Filling a string tensor with bytes, NULs included. The binding's
// StringTensor.SetContents goes through C strings (FillStringTensor), so an
// element was cut at its first NUL byte: "a\x00b" ran as "a". ONNX Runtime's
// GetResizedStringTensorElementBuffer (C API 16, ORT 1.16) sizes an element
// by an explicit length; the binding does not expose it, so this calls it
// through the OrtApi of the library the binding loaded. See
// docs/rationale.md ("BYTES carry NULs").

/*
#cgo linux LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

typedef struct OrtStatus OrtStatus;
typedef struct OrtValue OrtValue;
typedef struct OrtApi OrtApi;
typedef struct OrtApiBase {
	const OrtApi *(*GetApi)(uint32_t version);
	const char *(*GetVersionString)(void);
} OrtApiBase;

// OrtApi is a struct of function pointers that ONNX Runtime only ever
// appends to (its ABI promise), so a function's index never changes. These
// are the indices in onnxruntime_c_api.h (offsetof / sizeof(void *)).
enum {
	weirGetErrorMessage = 2,
	weirReleaseStatus = 93,
	weirGetResizedStringTensorElementBuffer = 252,
	weirAPIVersion = 16, // the first with GetResizedStringTensorElementBuffer
};

static void *const *weir_ort_api;

static int weir_ort_strings_init(const char *path) {
	void *h = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
	if (!h) return 1;
	const OrtApiBase *(*get_base)(void) = (const OrtApiBase *(*)(void))dlsym(h, "OrtGetApiBase");
	const OrtApi *api = get_base ? get_base()->GetApi(weirAPIVersion) : NULL;
	dlclose(h); // the binding's handle keeps the library loaded
	if (!api) return 2;
	weir_ort_api = (void *const *)api;
	return 0;
}

// weir_fill_strings sets the n elements of string tensor v: element i is
// lens[i] bytes of data, following element i-1's.
static OrtStatus *weir_fill_strings(OrtValue *v, const char *data, const size_t *lens, size_t n) {
	OrtStatus *(*resized)(OrtValue *, size_t, size_t, char **) =
		(OrtStatus *(*)(OrtValue *, size_t, size_t, char **))weir_ort_api[weirGetResizedStringTensorElementBuffer];
	for (size_t i = 0; i < n; i++) {
		char *buf = NULL;
		OrtStatus *st = resized(v, i, lens[i], &buf);
		if (st) return st;
		if (lens[i] > 0) memcpy(buf, data, lens[i]);
		data += lens[i];
	}
	return NULL;
}

static const char *weir_status_message(OrtStatus *st) {
	return ((const char *(*)(const OrtStatus *))weir_ort_api[weirGetErrorMessage])(st);
}

static void weir_release_status(OrtStatus *st) {
	((void (*)(OrtStatus *))weir_ort_api[weirReleaseStatus])(st);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// stringsReady says initStrings succeeded (weir_ort_api is set).
var stringsReady bool

// initStrings finds the OrtApi of the runtime loaded from path (InitRuntime
// has loaded it). It also checks that the binding's ValueInternalData is
// still one pointer, the OrtValue, which ortValue reads.
func initStrings(path string) error {
	if ty := reflect.TypeFor[ort.ValueInternalData](); ty.NumField() != 1 || ty.Field(0).Type.Kind() != reflect.Pointer {
		return errors.New("onnxruntime_go's ValueInternalData is no longer one OrtValue pointer: models/ortstrings.go needs updating")
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	if rc := C.weir_ort_strings_init(cpath); rc != 0 {
		return fmt.Errorf("ONNX Runtime at %s: no C API %d for string tensors (step %d)", path, C.weirAPIVersion, rc)
	}
	stringsReady = true
	return nil
}

// ortValue is v's OrtValue.
func ortValue(v ort.Value) *C.OrtValue {
	return *(**C.OrtValue)(unsafe.Pointer(v.GetInternals()))
}

// fillStrings sets every element of t to exactly the bytes of values.
func fillStrings(t *ort.StringTensor, values []string) error {
	if len(values) == 0 {
		return nil
	}
	if !stringsReady {
		return errors.New("string tensors need InitRuntime")
	}
	n := 0
	for _, s := range values {
		n += len(s)
	}
	data := make([]byte, 0, n)
	lens := make([]C.size_t, len(values))
	for i, s := range values {
		data = append(data, s...)
		lens[i] = C.size_t(len(s))
	}
	var p *C.char
	if n > 0 {
		p = (*C.char)(unsafe.Pointer(&data[0]))
	}
	if st := C.weir_fill_strings(ortValue(t), p, &lens[0], C.size_t(len(values))); st != nil {
		msg := C.GoString(C.weir_status_message(st))
		C.weir_release_status(st)
		return fmt.Errorf("fill string tensor: %s", msg)
	}
	return nil
}
