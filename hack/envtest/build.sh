#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver and etcd) into $1, once.
# No prebuilt binary can be downloaded here, so:
#   - kube-apiserver is built from the Go module proxy with this scratch module
#     (k8s.io/kubernetes v1.37.2, its staging modules replaced by v0.37.2);
#   - etcd is copied from Debian's etcd-server package.
# Each binary is skipped when it is already there.
set -euo pipefail

out=${1:?usage: build.sh OUTPUT_DIR}
k8s_version=v1.37.2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [[ ! -x "$out/kube-apiserver" ]]; then
	echo "building kube-apiserver $k8s_version into $out (about 10 minutes, once)"
	ldflags="-s -w"
	ldflags+=" -X k8s.io/component-base/version.gitVersion=$k8s_version"
	ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
	ldflags+=" -X k8s.io/component-base/version.gitMinor=37"
	ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
	ldflags+=" -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
	# Other engineers share the CPU: build at the lowest priority.
	(cd "$here" && CGO_ENABLED=0 nice -n 19 go build -trimpath -ldflags "$ldflags" \
		-o "$out/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
	mv "$out/kube-apiserver.tmp" "$out/kube-apiserver"
fi

if [[ ! -x "$out/etcd" ]]; then
	if [[ ! -x /usr/bin/etcd ]]; then
		echo "installing Debian's etcd-server for its etcd binary"
		sudo=$([[ $(id -u) -eq 0 ]] || echo sudo)
		# Keep Debian from starting an etcd service: only the binary is wanted.
		# (Container images often ship a policy-rc.d already; keep theirs.)
		made_policy=
		if [[ ! -e /usr/sbin/policy-rc.d ]]; then
			printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
			$sudo chmod +x /usr/sbin/policy-rc.d
			made_policy=1
		fi
		$sudo apt-get update -qq
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq etcd-server >/dev/null
		if [[ -n $made_policy ]]; then $sudo rm -f /usr/sbin/policy-rc.d; fi
		# Where a service manager started it anyway, stop it.
		if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
			$sudo systemctl disable --now etcd || true
		fi
	fi
	cp /usr/bin/etcd "$out/etcd"
fi

echo "envtest assets ready in $out"
