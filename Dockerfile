# mcpstream's image: the static binary alone. The same image runs every
# role, the embedded broker included (`mcpstream broker`).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /mcpstream ./cmd/mcpstream

FROM scratch
COPY --from=build /mcpstream /mcpstream
ENTRYPOINT ["/mcpstream"]
