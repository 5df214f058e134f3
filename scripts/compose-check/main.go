// Validates a Compose file with compose-go, the loader Docker Compose itself uses: the file must parse, interpolate
// (every ${VAR:?message} set) and pass the Compose specification's schema, and every published port must be bound to
// a chosen address rather than every interface. Run by .ci/run, where no container engine exists:
// `(cd scripts/compose-check && go run . ../../docker-compose.yml)`.
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

func main() {
	if len(os.Args) != 2 {
		fail("usage: compose-check FILE")
	}
	file := os.Args[1]
	project, err := load(file)
	if err != nil {
		fail(fmt.Sprintf("compose-check: %s: %v", file, err))
	}
	for name, service := range project.Services {
		for _, port := range service.Ports {
			if port.Published != "" && (port.HostIP == "" || port.HostIP == "0.0.0.0" || port.HostIP == "::") {
				fail(fmt.Sprintf("compose-check: %s: service %s publishes port %s on every interface", file, name, port.Published))
			}
		}
	}
	names := project.ServiceNames()
	sort.Strings(names)
	fmt.Printf("compose-check: %s is valid (%s)\n", file, strings.Join(names, ", "))
}

func load(file string) (*types.Project, error) {
	options, err := cli.NewProjectOptions([]string{file}, cli.WithOsEnv, cli.WithName("annalist"))
	if err != nil {
		return nil, err
	}
	return options.LoadProject(context.Background())
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, message)
	os.Exit(1)
}
