-- One editing session with the real server, through the plugin's setup():
-- open a document, get a classification and diagnostics, edit it with buffer
-- APIs, get results for the new version, then the commands, hover, restart and
-- :checkhealth. The position encoding offered is $VQLSP_ENCODING only, so the
-- session is a utf-8 or a utf-16 one; the text has multi-byte and astral
-- characters before the edits, where the encodings disagree on columns.
local encoding = assert(T.env.VQLSP_ENCODING)
local vqlsp = require('vqlsp')
local status = require('vqlsp.status')

local bufnr
local client
local classifications = {}

local function buffer_text()
  local lines = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
  return table.concat(lines, '\n') .. (vim.bo[bufnr].eol and '\n' or '')
end

local function lsp_version()
  return vim.lsp.util.buf_versions[bufnr]
end

--- Waits for the classification of the buffer's current version and checks it
--- was computed on exactly the buffer's text.
local function wait_current_classification()
  local version = lsp_version()
  T.wait('classification of version ' .. version, function()
    local c = status.results[bufnr]
    return c ~= nil and c.version == version
  end)
  local c = status.results[bufnr]
  T.eq(c.textHash, vim.fn.sha256(buffer_text()), "server's text hash (its copy of the document)")
  return c
end

local function vqlsp_diagnostics()
  return vim.diagnostic.get(bufnr, { namespace = nil })
end

--- Diagnostics must cover whole characters: no range edge inside a UTF-8 sequence.
local function check_ranges(diagnostics)
  for _, d in ipairs(diagnostics) do
    T.eq(d.source, 'vqlsp', 'diagnostic source')
    for _, edge in ipairs({ { d.lnum, d.col }, { d.end_lnum, d.end_col } }) do
      local line = vim.api.nvim_buf_get_lines(bufnr, edge[1], edge[1] + 1, false)[1] or ''
      T.ok(edge[2] <= #line, string.format('column %d within line %d (%d bytes)', edge[2], edge[1], #line))
      local byte = line:byte(edge[2] + 1)
      T.ok(byte == nil or byte < 0x80 or byte >= 0xC0, string.format('edge %d:%d on a character boundary', edge[1], edge[2]))
    end
  end
end

local function diagnostic_texts()
  local texts = {}
  for _, d in ipairs(vqlsp_diagnostics()) do
    local text = vim.api.nvim_buf_get_text(bufnr, d.lnum, d.col, d.end_lnum, d.end_col, {})
    texts[#texts + 1] = vim.trim(table.concat(text, '\n'))
  end
  return texts
end

--- The session's server settings, with ``overrides`` on top.
local function settings(overrides)
  return vim.tbl_deep_extend('force', {
    model = T.env.VQLSP_MODEL,
    device = 'cpu',
    debounceMs = 0,
    sectionTokens = 512,
    diagnostics = { threshold = 0.5, severity = 'warning' },
  }, overrides or {})
end

-- :VqlspStatus's message (the first one it shows)
local function status_message()
  T.messages = {}
  vim.cmd('VqlspStatus')
  T.wait('the stats message', function()
    return #T.messages > 0
  end)
  return T.messages[1].msg
end

local function contains(list, wanted)
  for _, item in ipairs(list) do
    if item == wanted then
      return true
    end
  end
  return false
end

return {
  { 'setup() starts the server for a markdown buffer', function()
    vim.api.nvim_create_autocmd('User', {
      pattern = 'VqlspClassification',
      callback = function(args)
        classifications[#classifications + 1] = args.data.classification
      end,
    })
    vqlsp.setup({
      cmd = vim.json.decode(T.env.VQLSP_CMD),
      settings = settings(),
      position_encodings = { encoding },
      virtual_text = true,
    })
    vim.cmd.edit(vim.fn.fnameescape(T.env.VQLSP_DOCUMENT))
    bufnr = vim.api.nvim_get_current_buf()
    T.eq(vim.bo[bufnr].filetype, 'markdown', 'filetype')
    T.wait('vqlsp to attach and initialize', function()
      client = vqlsp.clients(bufnr)[1]
      return client ~= nil and client.initialized
    end)
    T.eq(client.offset_encoding, encoding, 'negotiated position encoding')
    T.eq(client.config.get_language_id(bufnr, 'markdown'), 'markdown', 'languageId')
    T.eq(client.config.get_language_id(bufnr, 'text'), 'plaintext', 'languageId of text')
  end },

  { 'receives a classification and diagnostics for the opened document', function()
    local c = wait_current_classification()
    T.ok(c.probabilities[c.label] ~= nil, 'label among probabilities')
    T.eq(vim.tbl_count(c.probabilities), 3, 'three document labels')
    T.ok(c.tokens > 0, 'tokens counted')
    T.wait('diagnostics', function()
      return #vqlsp_diagnostics() >= 2
    end)
    check_ranges(vqlsp_diagnostics())
    T.eq(vqlsp_diagnostics()[1].severity, vim.diagnostic.severity.WARN, 'severity from settings')
    T.ok(contains(diagnostic_texts(), 'Fans 😀 cheered!'), 'a sentence after the astral character, got ' .. vim.inspect(diagnostic_texts()))
    T.eq(vqlsp.statusline(bufnr), 'vqlsp: ' .. status.format(c), 'statusline')
    local marks = vim.api.nvim_buf_get_extmarks(bufnr, status.ns, 0, -1, { details = true })
    T.eq(#marks, 1, 'one virtual text mark')
    T.eq(marks[1][4].virt_text[1][1], 'vqlsp: ' .. status.format(c), 'virtual text')
    T.ok(#classifications >= 1, 'User VqlspClassification fired')
  end },

  { 'buffer edits give results for the new version', function()
    local first_version = lsp_version()
    local line = vim.api.nvim_buf_get_lines(bufnr, 0, 1, false)[1]
    -- insert after the emoji (byte column: Neovim converts to the session's encoding)
    local at = assert(line:find(' cheered', 1, true))
    vim.api.nvim_buf_set_text(bufnr, 0, at, 0, at, { 'really ' })
    -- replace a range that contains a multi-byte character ("2–1")
    local s, e = line:find('2–1', 1, true)
    vim.api.nvim_buf_set_text(bufnr, 0, s - 1, 0, e, { 'two—one' })
    -- a whole new line, and a deletion on the second line
    vim.api.nvim_buf_set_lines(bufnr, 2, 2, false, { 'A brand new sentence arrives here.' })
    local second = vim.api.nvim_buf_get_lines(bufnr, 1, 2, false)[1]
    local m = assert(second:find(' sharply', 1, true))
    vim.api.nvim_buf_set_text(bufnr, 1, m - 1, 1, m - 1 + #' sharply', { '' })
    T.eq(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), {
      'The match ended two—one after extra time. Fans 😀 really cheered!',
      'Shares fell on Monday.',
      'A brand new sentence arrives here.',
    }, 'buffer after edits')
    T.ok(lsp_version() > first_version, 'version advanced')
    wait_current_classification()
    T.wait('diagnostics of the new text', function()
      local texts = diagnostic_texts()
      return contains(texts, 'A brand new sentence arrives here.') and contains(texts, 'Fans 😀 really cheered!')
    end)
    check_ranges(vqlsp_diagnostics())
  end },

  { 'many small edits (typing) converge on the final text', function()
    for i = 1, 20 do
      local last = vim.api.nvim_buf_line_count(bufnr) - 1
      local text = vim.api.nvim_buf_get_lines(bufnr, last, last + 1, false)[1]
      vim.api.nvim_buf_set_text(bufnr, last, #text, last, #text, { i % 5 == 0 and ' é' or 'x' })
    end
    local c = wait_current_classification()
    T.eq(c.version, lsp_version(), 'latest version classified')
  end },

  { 'a change the server cannot apply is answered by resending the buffer', function()
    local version = lsp_version()
    T.messages = {}
    status.results[bufnr] = nil
    -- a range before the first line: the server withholds results and asks for the text
    client:notify('textDocument/didChange', {
      textDocument = { uri = vim.uri_from_bufnr(bufnr), version = version + 1 },
      contentChanges = { { range = { start = { line = -1, character = 0 }, ['end'] = { line = 0, character = 1 } }, text = 'x' } },
    })
    T.wait('the plugin to resend the buffer', function()
      return #T.messages > 0
    end)
    T.ok(T.messages[1].msg:find('vqlsp: resending', 1, true), 'resync message: ' .. T.messages[1].msg)
    wait_current_classification()
    -- later incremental edits apply on top of the resent text
    vim.api.nvim_buf_set_text(bufnr, 0, 0, 0, 0, { 'Resynced. ' })
    local c = wait_current_classification()
    T.eq(c.version, lsp_version(), 'an edit after the resync is classified')
  end },

  { ':VqlspStatus shows the compute stats of this buffer', function()
    local msg = status_message()
    T.ok(msg:find('vqlsp: ' .. status.results[bufnr].label, 1, true), 'label in ' .. msg)
    T.ok(msg:find('version: ' .. lsp_version(), 1, true), 'current version in ' .. msg)
    T.ok(msg:find('textHash: ' .. vim.fn.sha256(buffer_text()), 1, true), 'text hash in ' .. msg)
  end },

  { 'a cursor move tells the server where the writer is (a code action, as VS Code sends)', function()
    vim.api.nvim_win_set_buf(0, bufnr)
    vim.api.nvim_win_set_cursor(0, { 1, 4 }) -- ASCII: code-point offset 4
    vim.api.nvim_exec_autocmds('CursorMoved', { buffer = bufnr }) -- (no main loop here to fire it)
    local focus, asking
    T.wait('the server to take the cursor for the writer', function()
      if not asking then
        asking = true
        vqlsp.document_stats(bufnr, function(_, stats)
          focus, asking = stats and stats.focus, false
        end)
      end
      return focus == 4
    end)
  end },

  { 'the stats asked at the cursor give the compute of the sentence under it', function()
    vim.api.nvim_win_set_buf(0, bufnr)
    vim.api.nvim_win_set_cursor(0, { 1, 2 }) -- inside 'Resynced.', ASCII: code-point offset 2
    local got
    vqlsp.document_stats(bufnr, function(err, stats)
      got = { err = err, stats = stats }
    end, 'cursor')
    T.wait('the stats at the cursor', function()
      return got ~= nil
    end)
    T.ok(got.err == nil and got.stats ~= nil, 'stats: ' .. vim.inspect(got.err))
    local stats = got.stats
    -- the sentence the server means: the last one starting at or before the offset
    local under
    for _, s in ipairs(stats.span_labels) do
      if s.start <= 2 then
        under = s
      end
    end
    T.ok(under ~= nil and 2 <= under['end'], 'a sentence holds offset 2: ' .. vim.inspect(stats.span_labels))
    T.ok(type(under.compute) == 'table' and type(under.compute.rowsPerToken) == 'number',
      'the sentence has its compute: ' .. vim.inspect(under))
    T.eq(stats.computeAtCursor, under.compute, 'computeAtCursor is the compute of the sentence under the cursor')
    local line = assert(vqlsp.format_cursor_compute(stats))
    T.ok(line:find(string.format('this sentence: %.2f layers recomputed per token (document mean %.2f)',
      under.compute.rowsPerToken, stats.compute.rowsPerToken), 1, true), line)
    -- :VqlspStatus sends the cursor too and shows that line under the label
    local msg = status_message()
    T.eq(vim.split(msg, '\n')[2], line, 'second line of ' .. msg)
  end },

  { 'hover shows the document label', function()
    local responses = vim.lsp.buf_request_sync(bufnr, 'textDocument/hover', {
      textDocument = { uri = vim.uri_from_bufnr(bufnr) },
      position = { line = 1, character = 2 },
    }, T.timeout)
    local result = assert(responses and responses[client.id] and responses[client.id].result, 'hover result')
    T.eq(result.contents.kind, 'markdown', 'hover kind')
    T.ok(result.contents.value:find(status.results[bufnr].label, 1, true), 'label in hover: ' .. result.contents.value)
  end },

  { 'settings changes reach the server', function()
    vqlsp.update_settings(settings({ diagnostics = { threshold = 1.0 } }))
    -- pulled diagnostics refresh on the next change
    vim.api.nvim_buf_set_lines(bufnr, -1, -1, false, { 'One more line.' })
    wait_current_classification()
    T.wait('diagnostics to disappear at threshold 1.0', function()
      return #vqlsp_diagnostics() == 0
    end)
  end },

  { 'a pause settles drifted positions and the diagnostics are pulled again', function()
    vqlsp.update_settings(settings({ settleMs = 100, diagnostics = { threshold = 0.0 } }))
    local version
    local function settled()
      local c = status.results[bufnr]
      return c ~= nil and c.version == version and c.settled == true
    end
    -- pulls made once the settled classification is in (Neovim pulls by itself only on edits)
    local pulls_after_settle = 0
    local request = client.request
    client.request = function(self, method, ...)
      if method == 'textDocument/diagnostic' and settled() then
        pulls_after_settle = pulls_after_settle + 1
      end
      return request(self, method, ...)
    end
    -- an insertion mid-document: under the stable policy later tokens keep their ids
    vim.api.nvim_buf_set_text(bufnr, 0, 4, 0, 4, { 'very long ' })
    version = lsp_version()
    T.wait('a settled classification of version ' .. version, settled)
    T.eq(status.results[bufnr].positionDrift, 0, 'exact position ids after the settle')
    T.wait('a diagnostic pull after the settle', function()
      return pulls_after_settle > 0
    end)
    client.request = nil -- back to the class method
  end },

  { 'vim.lsp.buf.code_action ignores a sentence, a label in the file and in the workspace', function()
    -- vim.ui.select stands in for the user: it records what is offered and picks by title.
    local offered
    local function pick(title)
      offered = nil
      vim.ui.select = function(items, _, on_choice)
        offered = {}
        local chosen
        for _, item in ipairs(items) do
          offered[#offered + 1] = item.action.title
          if item.action.title == title then
            chosen = item
          end
        end
        on_choice(chosen)
      end
      vim.lsp.buf.code_action()
      T.wait('code actions to be offered', function()
        return offered ~= nil
      end)
      T.ok(contains(offered, title), title .. ' offered among ' .. vim.inspect(offered))
    end
    local function row_of(text)
      for i, line in ipairs(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)) do
        if line:find(text, 1, true) then
          return i
        end
      end
    end
    local function labelled(label)
      return vim.tbl_filter(function(d)
        return d.code == label
      end, vqlsp_diagnostics())
    end

    -- 1. The sentence: a comment after it, its diagnostic gone, the others kept.
    local row = assert(row_of('Shares fell on Monday.'))
    T.wait('a diagnostic on that line', function()
      return #vim.diagnostic.get(bufnr, { lnum = row - 1 }) == 1
    end)
    local before = #vqlsp_diagnostics()
    vim.api.nvim_win_set_cursor(0, { row, 0 })
    pick('Ignore this sentence (vqlsp)')
    T.eq(#offered, 3, 'three actions (a .vqlsp.json marks the workspace root)')
    T.wait('the comment in the buffer', function()
      return vim.api.nvim_buf_get_lines(bufnr, row - 1, row, false)[1] == 'Shares fell on Monday. <!-- vqlsp-ignore -->'
    end)
    wait_current_classification()
    T.wait('that diagnostic to go', function()
      return #vim.diagnostic.get(bufnr, { lnum = row - 1 }) == 0 and #vqlsp_diagnostics() == before - 1
    end)

    -- 2. The label of the first line's first sentence, in this file: a comment at the end.
    vim.api.nvim_win_set_cursor(0, { 1, 0 })
    local label = vim.diagnostic.get(bufnr, { lnum = 0 })[1].code
    pick(string.format("Ignore '%s' in this file (vqlsp)", label))
    local comment = string.format('<!-- vqlsp-ignore-label: %s -->', label)
    T.wait('the label comment at the end', function()
      return row_of(comment) ~= nil
    end)
    T.ok(row_of(comment) >= vim.api.nvim_buf_line_count(bufnr) - 1, 'the comment is at the end')
    wait_current_classification()
    T.wait('no ' .. label .. ' diagnostics', function()
      return #labelled(label) == 0
    end)

    -- Without the comment they come back; 3. then the same label in the workspace.
    local at = row_of(comment)
    vim.api.nvim_buf_set_lines(bufnr, at - 1, at, false, {})
    wait_current_classification()
    T.wait(label .. ' diagnostics again', function()
      return #labelled(label) > 0
    end)
    vim.api.nvim_win_set_cursor(0, { 1, 0 })
    pick(string.format("Ignore '%s' in the workspace (.vqlsp.json) (vqlsp)", label))
    local file = vim.fs.joinpath(vim.fs.dirname(T.env.VQLSP_DOCUMENT), '.vqlsp.json')
    T.wait('.vqlsp.json to name ' .. label, function()
      local ok, data = pcall(function()
        return vim.json.decode(table.concat(vim.fn.readfile(file), '\n'))
      end)
      return ok and vim.deep_equal(data.ignoreLabels, { label })
    end)
    T.wait('no ' .. label .. ' diagnostics (workspace)', function()
      return #labelled(label) == 0
    end)
  end },

  { ':VqlspRestart starts a new server for the same buffer', function()
    local old = client.id
    vim.cmd('VqlspRestart')
    T.wait('a new initialized client', function()
      client = vqlsp.clients(bufnr)[1]
      return client ~= nil and client.id ~= old and client.initialized
    end)
    T.eq(vim.lsp.get_client_by_id(old), nil, 'old client gone')
    wait_current_classification()
  end },

  { ':checkhealth vqlsp reports no errors', function()
    vim.cmd('checkhealth vqlsp')
    local report = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
    vim.cmd('bwipeout')
    T.ok(report:find('OK Neovim', 1, true), report)
    T.ok(report:find('OK server: ', 1, true), 'server version in ' .. report)
    T.ok(report:find('position encoding ' .. encoding, 1, true), report)
    T.ok(not report:find('ERROR', 1, true), report)
  end },
}
