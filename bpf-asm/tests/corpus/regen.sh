#!/bin/sh
# Regenerates forms.hex, the encodings llvm-mc-19 gives every instruction of forms.s, one line
# per instruction (two 8-byte slots for lddw), lowercase hex without separators.
set -eu
cd "$(dirname "$0")"
llvm-mc-19 -triple bpf -show-encoding forms.s \
    | sed -n 's/.*# encoding: \[\(.*\)\]$/\1/p' \
    | sed 's/0x//g; s/,//g' > forms.hex
echo "wrote $(wc -l < forms.hex) encodings to forms.hex"
