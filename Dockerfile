# syntax=docker/dockerfile:1
#
# webhookd in a small image: one static binary on distroless.
#
#   docker build -t webhookd --build-arg VERSION=$(git describe --always --dirty) .
#   docker run --rm webhookd version
#
# The image runs `webhookd serve` unless given another command (migrate,
# receiver, version); docker-compose.yml uses it for all of them.

FROM golang:1.26 AS build
WORKDIR /src

# Dependencies first, so editing the code doesn't download them again.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/webhookd ./cmd/webhookd

# distroless/static has CA certificates (for https webhooks) and tzdata, and
# no shell. The nonroot variant runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/webhookd /webhookd
USER nonroot:nonroot
EXPOSE 8080 9464
ENTRYPOINT ["/webhookd"]
CMD ["serve"]
