package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mcpstream/mcpstream/ops/admin"
	"github.com/mcpstream/mcpstream/ops/replay"
	"github.com/mcpstream/mcpstream/projections"
	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/twmb/franz-go/pkg/kadm"
)

// projFlags are the flags the projection commands share.
type projFlags struct {
	fs          *flag.FlagSet
	brokers     *string
	prefix      *string
	partitions  *int
	replication *int
	logLevel    *string
	instance    *string
	pgDSN       *string
	pgLayout    *string
	pgParts     *int
	pgAsync     *bool
}

func newProjFlags(name string, withPG bool) *projFlags {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	f := &projFlags{fs: fs,
		brokers:     fs.String("brokers", "127.0.0.1:9092", "comma-separated Kafka bootstrap servers"),
		prefix:      fs.String("topic-prefix", streams.DefaultPrefix, "prefix of every topic and group name"),
		partitions:  fs.Int("partitions", 12, "partitions of every topic (must match an existing deployment)"),
		replication: fs.Int("replication", 1, "replication factor of created topics (3 on a real cluster)"),
		logLevel:    fs.String("log-level", "info", "debug, info, warn or error"),
		instance:    fs.String("instance-id", "", "name of this process in client ids (default hostname-pid)"),
	}
	if withPG {
		f.pgDSN = fs.String("pg-dsn", "", "PostgreSQL connection string of the projections; several, comma-separated, shard the rows over that many databases (consistent hashing)")
		f.pgLayout = fs.String("pg-layout", "auto", "auto (citus if installed, else native), native (PARTITION BY HASH), citus, or plain")
		f.pgParts = fs.Int("pg-partitions", 8, "hash partitions per table in the native layout (fixed once created)")
		f.pgAsync = fs.Bool("pg-async-commit", true, "synchronous_commit=off for projection writes (safe: rows and offsets commit together, a database crash loses both and the log replays them)")
	}
	return f
}

func (f *projFlags) streams() streams.Config {
	return streams.Config{Brokers: splitList(*f.brokers), Topics: streams.Topics{Prefix: *f.prefix},
		Partitions: int32(*f.partitions), Replication: int16(*f.replication)}.WithDefaults()
}

func (f *projFlags) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(*f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})), nil
}

func (f *projFlags) clientID(role string) string {
	id := *f.instance
	if id == "" {
		host, _ := os.Hostname()
		id = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return role + "-" + id
}

func (f *projFlags) store(ctx context.Context, log *slog.Logger) (projections.Store, error) {
	dsns := splitList(*f.pgDSN)
	if len(dsns) == 0 {
		return nil, errors.New("--pg-dsn is required (or MCPSTREAM_PG_DSN)")
	}
	layout := projections.Layout(*f.pgLayout)
	if layout == "auto" {
		layout = projections.LayoutAuto
	}
	switch layout {
	case projections.LayoutAuto, projections.LayoutNative, projections.LayoutCitus, projections.LayoutPlain:
	default:
		return nil, fmt.Errorf("--pg-layout %q: want auto, native, citus or plain", *f.pgLayout)
	}
	return projections.Open(ctx, projections.StoreConfig{DSNs: dsns, Layout: layout, Partitions: *f.pgParts,
		AsyncCommit: *f.pgAsync, Logger: log})
}

// runProjector keeps the PostgreSQL projections up to date with the log.
func runProjector(ctx context.Context, args []string) error {
	f := newProjFlags("projector", true)
	batch := f.fs.Int("batch-size", 10000, "most records per transaction")
	projs := f.fs.String("projection", "", "comma-separated projections to maintain (default all: "+strings.Join(projections.Live, ",")+")")
	if err := parse(f.fs, args); err != nil {
		return err
	}
	log, err := f.logger()
	if err != nil {
		return err
	}
	st, err := f.store(ctx, log)
	if err != nil {
		return err
	}
	defer st.Close()
	reg, err := schemas.Load()
	if err != nil {
		return err
	}
	p, err := projections.New(projections.Deps{Store: st, Schemas: reg, Logger: log},
		projections.Config{Streams: f.streams(), Projections: splitList(*projs), ClientID: f.clientID("projector"), BatchSize: *batch})
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

// runReplay rebuilds projections from the log into fresh tables and swaps
// them in; interrupted, it resumes on the next run.
func runReplay(ctx context.Context, args []string) error {
	f := newProjFlags("replay", true)
	projs := f.fs.String("projection", "all", "comma-separated projections to rebuild together, or all ("+strings.Join(projections.Live, ",")+")")
	from := f.fs.String("from", "earliest", "where to start: earliest, an RFC 3339 time (2026-03-01T12:00:00Z) or Unix milliseconds")
	every := f.fs.Duration("progress-every", 2*time.Second, "interval between progress lines")
	batch := f.fs.Int("batch-size", 20000, "most records per batch")
	noSwap := f.fs.Bool("no-swap", false, "build the fresh tables but leave the live ones in place (run again without it to swap)")
	abort := f.fs.Bool("abort", false, "drop the unfinished rebuild of these projections instead")
	if err := parse(f.fs, args); err != nil {
		return err
	}
	log, err := f.logger()
	if err != nil {
		return err
	}
	which := splitList(*projs)
	if len(which) == 1 && which[0] == "all" {
		which = nil
	}
	start, err := parseFrom(*from)
	if err != nil {
		return err
	}
	st, err := f.store(ctx, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if *abort {
		if err := replay.Abort(ctx, st, which); err != nil {
			return err
		}
		fmt.Println("unfinished rebuild dropped")
		return nil
	}
	reg, err := schemas.Load()
	if err != nil {
		return err
	}
	_, err = replay.Run(ctx, st, reg, replay.Config{Streams: f.streams(), Projections: which, From: start, BatchSize: *batch,
		Every: *every, Out: os.Stdout, Logger: log, ClientID: f.clientID("replay"), NoSwap: *noSwap})
	if err != nil && ctx.Err() != nil {
		return errors.New("interrupted; run the same command again to resume")
	}
	return err
}

func parseFrom(s string) (time.Time, error) {
	switch {
	case s == "" || s == "earliest":
		return time.Time{}, nil
	case strings.Trim(s, "0123456789") == "":
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("--from %q: %w", s, err)
		}
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--from %q: want earliest, RFC 3339 or Unix milliseconds: %w", s, err)
	}
	return t, nil
}

// runTopics describes the platform's topics, creating missing ones with
// --create.
func runTopics(ctx context.Context, args []string) error {
	f := newProjFlags("topics", false)
	create := f.fs.Bool("create", false, "create the missing topics first")
	if err := parse(f.fs, args); err != nil {
		return err
	}
	log, err := f.logger()
	if err != nil {
		return err
	}
	cfg := f.streams()
	cl, err := streams.NewClient(cfg, f.clientID("topics"), log)
	if err != nil {
		return err
	}
	defer cl.Close()
	infos, err := admin.Topics(ctx, kadm.NewClient(cl), cfg, *create)
	if err != nil {
		return err
	}
	return admin.WriteTopics(os.Stdout, infos)
}

// runLag prints consumer lag per group and partition; with --pg-dsn also
// the projector's, from the offsets in PostgreSQL.
func runLag(ctx context.Context, args []string) error {
	f := newProjFlags("lag", true)
	groups := f.fs.String("group", "", "comma-separated consumer groups (default: every group of the deployment)")
	if err := parse(f.fs, args); err != nil {
		return err
	}
	log, err := f.logger()
	if err != nil {
		return err
	}
	cfg := f.streams()
	cl, err := streams.NewClient(cfg, f.clientID("lag"), log)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	gs := splitList(*groups)
	if len(gs) == 0 {
		gs = admin.Groups(cfg.Topics)
	}
	rows, err := admin.Lag(ctx, adm, gs...)
	if err != nil {
		return err
	}
	if *f.pgDSN != "" {
		st, err := f.store(ctx, log)
		if err != nil {
			return err
		}
		defer st.Close()
		pr, err := admin.ProjectorLag(ctx, adm, st, cfg.Topics)
		if err != nil {
			return err
		}
		rows = append(rows, pr...)
	}
	return admin.WriteLag(os.Stdout, rows)
}
