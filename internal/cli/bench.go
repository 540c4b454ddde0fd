package cli

import "context"

func (m *Main) bench(ctx context.Context, args []string) error {
	return nil
}
