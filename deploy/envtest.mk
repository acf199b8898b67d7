# Kubernetes targets of weir, included from the top Makefile.
#
#   make envtest-assets  builds kube-apiserver and copies etcd into
#                        .cache/envtest/ once (no binary can be downloaded
#                        here); exports KUBEBUILDER_ASSETS for the tests.
#   make crds            regenerates the WeirRoute CRD and deepcopy code.

ENVTEST_DIR := $(CURDIR)/.cache/envtest
CONTROLLER_GEN_VERSION := v0.23.0
CONTROLLER_GEN := $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
export KUBEBUILDER_ASSETS := $(ENVTEST_DIR)

.PHONY: envtest-assets crds

envtest-assets: $(ENVTEST_DIR)/kube-apiserver $(ENVTEST_DIR)/etcd

$(ENVTEST_DIR)/kube-apiserver $(ENVTEST_DIR)/etcd:
	./hack/envtest/build.sh $(ENVTEST_DIR)

crds:
	$(CONTROLLER_GEN) object paths=./deploy/api/...
	$(CONTROLLER_GEN) crd:maxDescLen=400 paths=./deploy/api/... output:crd:artifacts:config=deploy/kubernetes/crd
