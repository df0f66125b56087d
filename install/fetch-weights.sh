#!/usr/bin/env bash
# Fetches torchvision's pretrained ImageNet weights for the lecture notebooks.
#   install/fetch-weights.sh [--dir DIR] NAME...     NAME: alexnet vgg11 vgg13 vgg16 vgg19
#                                                    vgg11_bn vgg13_bn vgg16_bn vgg19_bn
#                                                    resnet18 resnet34 resnet50 | all
# The files keep torchvision's names (e.g. resnet18-f37072fd.pth) and go into
# notebooks/weights/ unless --dir is given.  A file already in the folder or in
# torch's cache (~/.cache/torch/hub/checkpoints) is reused; every file is checked
# against the SHA-256 prefix in its name, as torchvision checks it.
set -euo pipefail
cd "$(dirname "$0")/.."
base=https://download.pytorch.org/models
declare -A files=(
  [alexnet]=alexnet-owt-7be5be79.pth
  [vgg11]=vgg11-8a719046.pth [vgg13]=vgg13-19584684.pth
  [vgg16]=vgg16-397923af.pth [vgg19]=vgg19-dcbb9e9d.pth
  [vgg11_bn]=vgg11_bn-6002323d.pth [vgg13_bn]=vgg13_bn-abd245e5.pth
  [vgg16_bn]=vgg16_bn-6c64b313.pth [vgg19_bn]=vgg19_bn-c79401a0.pth
  [resnet18]=resnet18-f37072fd.pth [resnet34]=resnet34-b627a593.pth
  [resnet50]=resnet50-0676ba61.pth
)
dir=notebooks/weights
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    all) names+=("${!files[@]}"); shift ;;
    *) names+=("$1"); shift ;;
  esac
done
[ ${#names[@]} -gt 0 ] || { echo "usage: install/fetch-weights.sh [--dir DIR] NAME... (try --help)" >&2; exit 2; }
mkdir -p "$dir"

check() { # FILE -> 0 if its sha256 starts with the hash in its name
  local f=$1 want
  want=$(basename "$f" .pth); want=${want##*-}
  sha256sum "$f" | cut -c1-${#want} | grep -qx "$want"
}

status=0
for name in "${names[@]}"; do
  file=${files[$name]:-}
  if [ -z "$file" ]; then
    echo "fetch-weights: unknown model '$name' (known: ${!files[*]})" >&2; status=1; continue
  fi
  dst="$dir/$file"
  cache="${TORCH_HOME:-$HOME/.cache/torch}/hub/checkpoints/$file"
  if [ -f "$dst" ] && check "$dst"; then echo "$name: $dst (already there, hash ok)"; continue; fi
  if [ -f "$cache" ] && check "$cache"; then
    cp "$cache" "$dst.part" && mv "$dst.part" "$dst"; echo "$name: copied from $cache"; continue
  fi
  echo "$name: downloading $file ..."
  if command -v curl >/dev/null; then get=(curl -fsSL --retry 2 -o "$dst.part" "$base/$file")
  elif command -v wget >/dev/null; then get=(wget -q -O "$dst.part" "$base/$file")
  else echo "fetch-weights: needs curl or wget (apt-get install curl)" >&2; exit 1; fi
  if ! "${get[@]}"; then
    rm -f "$dst.part"
    echo "fetch-weights: cannot download $file (no network?). Copy it into $dir/ by hand." >&2
    status=1; continue
  fi
  if ! check "$dst.part"; then
    rm -f "$dst.part"; echo "fetch-weights: $file failed its hash check; removed" >&2; status=1; continue
  fi
  mv "$dst.part" "$dst"; echo "$name: $dst (hash ok)"
done
exit $status
