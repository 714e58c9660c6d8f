package main

import (
	"flag"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// envFlags registers flags whose default is their SR_* variable when set.
// Env errors are kept per flag: a flag given on the command line wins,
// so a bad SR_* value it overrides is not an error.
type envFlags struct {
	fs      *flag.FlagSet
	getenv  func(string) string
	envErrs map[string]error
	// Secrets never become flag defaults: --help would print them.
	secrets []func(set map[string]bool)
}

func newEnvFlags(fs *flag.FlagSet, getenv func(string) string) *envFlags {
	return &envFlags{fs: fs, getenv: getenv, envErrs: map[string]error{}}
}

func (f *envFlags) str(p *string, name, env, def, help string) {
	if v := f.getenv(env); v != "" {
		def = v
	}
	f.fs.StringVar(p, name, def, help+" (env "+env+")")
}

func (f *envFlags) secret(p *string, name, env, def, help string) {
	f.fs.StringVar(p, name, def, help+" (env "+env+")")
	f.secrets = append(f.secrets, func(set map[string]bool) {
		if v := f.getenv(env); v != "" && !set[name] {
			*p = v
		}
	})
}

func (f *envFlags) dur(p *time.Duration, name, env string, def time.Duration, help string) {
	if v := f.getenv(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.envErrs[name] = fmt.Errorf("%s: invalid duration %q", env, v)
		} else {
			def = d
		}
	}
	f.fs.DurationVar(p, name, def, help+" (env "+env+")")
}

func (f *envFlags) integer(p *int, name, env string, def int, help string) {
	if v := f.getenv(env); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.envErrs[name] = fmt.Errorf("%s: invalid integer %q", env, v)
		} else {
			def = n
		}
	}
	f.fs.IntVar(p, name, def, help+" (env "+env+")")
}

func (f *envFlags) boolean(p *bool, name, env string, def bool, help string) {
	if v := f.getenv(env); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.envErrs[name] = fmt.Errorf("%s: invalid boolean %q", env, v)
		} else {
			def = b
		}
	}
	f.fs.BoolVar(p, name, def, help+" (env "+env+")")
}

// apply runs after parsing: it returns the env errors of flags not given on
// the command line, sorted by flag name, and fills the secrets those flags
// did not set.
func (f *envFlags) apply() []error {
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(f.envErrs)) {
		if !set[name] {
			errs = append(errs, f.envErrs[name])
		}
	}
	for _, apply := range f.secrets {
		apply(set)
	}
	return errs
}
