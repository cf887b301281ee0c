-- Heads trained with `vqlsp train-head` served beside the default model's own, in a real
-- Neovim: a document head ($VQLSP_SPAM_HEAD: spam / ham, on SMS messages) adds a label to
-- the classification (its `heads` field, by name, while `label` stays the model's own), and a
-- span head ($VQLSP_QUESTION_HEAD: the TREC answer type of a question) adds diagnostics
-- beside the shipped sentiment head's. Changing the `heads` setting reloads them without
-- restarting the server.
local vqlsp = require('vqlsp')
local status = require('vqlsp.status')

local bufnr
local client

local function lsp_version()
  return vim.lsp.util.buf_versions[bufnr]
end

local function settings(heads)
  return {
    device = 'cpu',
    debounceMs = 0,
    heads = heads,
    diagnostics = { threshold = 0.0, severity = 'information' },
  }
end

--- The classification of the buffer's current version whose heads are exactly ``names``.
local function wait_heads(names)
  table.sort(names)
  local got
  T.wait('a classification with heads ' .. table.concat(names, ', '), function()
    local c = status.results[bufnr]
    if c == nil or c.version ~= lsp_version() or type(c.heads) ~= 'table' then
      return false
    end
    got = vim.tbl_keys(c.heads)
    table.sort(got)
    return vim.deep_equal(got, names)
  end)
  return status.results[bufnr]
end

--- Diagnostics by the head that produced them (the LSP diagnostic's data.head).
local function diagnostics_by_head()
  local out = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    local data = d.user_data and d.user_data.lsp and d.user_data.lsp.data or {}
    local head = data.head or '?'
    out[head] = out[head] or {}
    table.insert(out[head], d)
  end
  return out
end

local function edit()
  vim.api.nvim_buf_set_lines(bufnr, -1, -1, false, { 'Thanks.' })
end

return {
  { 'the server starts on the default model with two extra heads', function()
    vqlsp.setup({
      cmd = vim.json.decode(T.env.VQLSP_CMD),
      settings = settings({ T.env.VQLSP_SPAM_HEAD, T.env.VQLSP_QUESTION_HEAD }),
    })
    vim.cmd.edit(vim.fn.fnameescape(T.env.VQLSP_DOCUMENT))
    bufnr = vim.api.nvim_get_current_buf()
    T.wait('vqlsp to attach and initialize', function()
      client = vqlsp.clients(bufnr)[1]
      return client ~= nil and client.initialized
    end)
  end },

  { 'the classification carries every document head, the shipped one first', function()
    local c = wait_heads({ 'topic', 'spam' })
    T.eq(c.label, c.heads.topic.label, 'label is the shipped head')
    T.eq(c.probabilities, c.heads.topic.probabilities, 'probabilities are the shipped head')
    T.eq(vim.tbl_count(c.heads.topic.probabilities), 5, 'five topics')
    local labels = vim.tbl_keys(c.heads.spam.probabilities)
    table.sort(labels)
    T.eq(labels, { 'ham', 'spam' }, 'spam head labels')
    T.eq(c.heads.spam.label, 'spam', 'the prize text reads as spam')
  end },

  { 'each span head gives its own diagnostics', function()
    edit() -- Neovim pulls diagnostics on its own events
    T.wait('diagnostics of both span heads', function()
      local by = diagnostics_by_head()
      return by.sentiment ~= nil and by.question ~= nil
    end)
    local by = diagnostics_by_head()
    T.eq(#by.sentiment, #by.question, 'one diagnostic per sentence and head')
    local types = {}
    for _, d in ipairs(by.question) do
      T.ok(d.message:find('^question: sentence reads as '), 'message names the head: ' .. d.message)
      types[d.user_data.lsp.data.label] = true
    end
    T.ok(types.location or types.human or types.numeric, 'a question type among ' .. vim.inspect(vim.tbl_keys(types)))
  end },

  { 'changing the heads setting reloads them without a restart', function()
    local id = client.id
    vqlsp.update_settings(settings({}))
    edit()
    wait_heads({ 'topic' })
    T.wait('only the shipped span head', function()
      local by = diagnostics_by_head()
      return by.sentiment ~= nil and by.question == nil
    end)
    vqlsp.update_settings(settings({ T.env.VQLSP_SPAM_HEAD }))
    edit()
    wait_heads({ 'topic', 'spam' })
    T.eq(vqlsp.clients(bufnr)[1].id, id, 'the same server')
  end },
}
