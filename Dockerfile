# syntax=docker/dockerfile:1
# Multi-stage build of the vltava broker.
#   docker build -t vltava .
#   docker run -p 9092:9092 -v vltava-data:/var/lib/vltava vltava
# Override the advertised address when clients reach the container by another name:
#   docker run ... vltava --listen 0.0.0.0:9092 --advertise myhost:9092 --data-dir /var/lib/vltava

FROM rust:1-bookworm AS build
WORKDIR /src
# The whole workspace is copied (see .dockerignore), but only the broker package
# is built: no librdkafka / cmake needed in this stage.
COPY . .
RUN cargo build --release --locked -p vltava --bin vltava \
 && strip target/release/vltava

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/vltava --create-home vltava
COPY --from=build /src/target/release/vltava /usr/local/bin/vltava
USER vltava
VOLUME /var/lib/vltava
EXPOSE 9092
ENV RUST_LOG=info
ENTRYPOINT ["/usr/local/bin/vltava"]
CMD ["--listen", "0.0.0.0:9092", "--advertise", "localhost:9092", "--data-dir", "/var/lib/vltava"]
