# Builds the tempest binary (used by docker-compose.yml's tempest service).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /tempest ./cmd/tempest

FROM gcr.io/distroless/static-debian12
COPY --from=build /tempest /tempest
EXPOSE 8288
ENTRYPOINT ["/tempest"]
CMD ["serve"]
