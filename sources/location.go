package sources

// Location is the source as the log names it ("file" + Location in
// SourceSynced and in AgentStarted's configured sources): the absolute,
// clean manifest path.
func (s *FileSource) Location() string { return s.cfg.Path }

// Location is the manifest URL, as the log names it.
func (s *HTTPSource) Location() string { return s.cfg.URL }
