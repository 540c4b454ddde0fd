package backup

// PrevMapped returns how many entries of previous points incremental
// backups have loaded into memory whole.
func PrevMapped() int64 { return prevMapped.Load() }
