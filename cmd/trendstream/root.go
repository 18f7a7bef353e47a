package main

import (
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cast"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// envPrefix prefixes the environment variable of every setting: --state-dir
// is TRENDSTREAM_STATE_DIR.
const envPrefix = "TRENDSTREAM"

// envName returns the environment variable of the flag named flag:
// "state-dir" is TRENDSTREAM_STATE_DIR.
func envName(flag string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "trendstream",
		Short: "Turn live retail sales into refreshed demand forecasts",
		Long: `trendstream reads sales events from Kafka, keeps event-time buckets and
features per series (store x SKU) in Badger, and publishes multi-step
forecasts with quantiles and a trend summary to an output topic.

Every flag is also an environment variable (TRENDSTREAM_ and the flag name in
upper case with '-' as '_') and a key of the YAML file given with --config.
Precedence: flag, then environment, then config file, then default.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.String("config", "", "YAML configuration file whose keys are flag names")
	pf.String("log-level", "info", "log level: debug, info, warn or error")
	pf.String("log-format", "text", "log format: text or json")
	root.AddCommand(demoCmd(), brokerCmd(), runCmd(), produceCmd(), tailCmd(), generateCmd(), backtestCmd())
	return root
}

// settings resolves a command's configuration: flags over TRENDSTREAM_*
// variables over the --config file over defaults.
func settings(cmd *cobra.Command) (*viper.Viper, error) {
	v := viper.New()
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	for _, fs := range []*pflag.FlagSet{cmd.Flags(), cmd.InheritedFlags()} {
		if err := v.BindPFlags(fs); err != nil {
			return nil, fmt.Errorf("binding flags: %w", err)
		}
	}
	if path := v.GetString("config"); path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("reading config file %s: %w", path, err)
		}
		known := knownKeys(cmd.Root())
		for _, k := range v.AllKeys() {
			if v.InConfig(k) && !slices.Contains(known, k) {
				return nil, fmt.Errorf("config file %s: unknown key %q", path, k)
			}
		}
	}
	if err := checkTypes(v, cmd.Flags(), cmd.InheritedFlags()); err != nil {
		return nil, err
	}
	return v, nil
}

// checkTypes returns an error naming the first setting whose environment
// variable or config file value does not parse as its flag's type. viper's
// getters would read such a value as zero, which is the default of most
// settings and a behaviour of its own for some (--lstm-average 0 turns
// averaging off), instead of the mistake it is. Flags given on the command
// line were checked by pflag.
func checkTypes(v *viper.Viper, sets ...*pflag.FlagSet) error {
	var err error
	for _, fs := range sets {
		fs.VisitAll(func(f *pflag.Flag) {
			if err != nil || f.Changed {
				return
			}
			val := v.Get(f.Name)
			var bad error
			switch f.Value.Type() {
			case "int":
				_, bad = cast.ToIntE(val)
			case "int64":
				_, bad = cast.ToInt64E(val)
			case "uint64":
				_, bad = cast.ToUint64E(val)
			case "float64":
				_, bad = cast.ToFloat64E(val)
			case "bool":
				_, bad = cast.ToBoolE(val)
			case "duration":
				_, bad = cast.ToDurationE(val)
			}
			if bad != nil {
				err = fmt.Errorf("--%s from %s or the config file: %v is not a valid %s", f.Name, envName(f.Name), val, f.Value.Type())
			}
		})
	}
	return err
}

// knownKeys lists every flag name of every command, so a config file shared
// by several subcommands may hold keys for each.
func knownKeys(root *cobra.Command) []string {
	var keys []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { keys = append(keys, f.Name) })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { keys = append(keys, f.Name) })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return keys
}

// setup reads cmd's settings and builds the logger they configure.
func setup(cmd *cobra.Command) (*viper.Viper, *slog.Logger, error) {
	v, err := settings(cmd)
	if err != nil {
		return nil, nil, err
	}
	log, err := newLogger(v)
	return v, log, err
}

// newLogger builds the process logger from --log-level and --log-format.
func newLogger(v *viper.Viper) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(v.GetString("log-level"))); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f := v.GetString("log-format"); f {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q is not text or json", f)
	}
}

// splitList splits a comma-separated flag value, dropping empty parts.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
