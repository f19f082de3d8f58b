# conntrace's image: the static binary and nothing else (no shell, no libc, no package manager).
#
# Build the static binary first, then the image (no registry and no build stage needed):
#   cargo build --release --target x86_64-unknown-linux-musl --bin conntrace
#   docker build -t conntrace:0.1.0 .
# For arm64 nodes: build --target aarch64-unknown-linux-musl and pass
#   --build-arg TARGET=aarch64-unknown-linux-musl --platform linux/arm64
FROM scratch
ARG TARGET=x86_64-unknown-linux-musl
COPY target/${TARGET}/release/conntrace /conntrace
# JSON lines on stdout for the node's log pipeline, Prometheus metrics on :9479.
EXPOSE 9479
ENTRYPOINT ["/conntrace"]
CMD ["--json", "--metrics", "0.0.0.0:9479"]
