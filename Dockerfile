# Worker and starter images for docker-compose.temporal.yml.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /out/worker ./worker && CGO_ENABLED=0 go build -o /out/starter ./starter && \
    CGO_ENABLED=0 go build -o /out/metasim ./metasim

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /app/
ENTRYPOINT ["/app/worker"]
