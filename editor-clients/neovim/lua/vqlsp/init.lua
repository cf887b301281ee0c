--- vqlsp for Neovim (>= 0.11): classification of prose as you write it.
---
---   require('vqlsp').setup({
---     cmd = { '/path/to/venv/bin/vqlsp', 'serve' },     -- or python = '/path/to/venv/bin/python'
---     settings = { device = 'cpu', diagnostics = { threshold = 0.8, severity = 'hint' } },
---     virtual_text = true,
---   })
---   vim.o.statusline = "%f %= %{v:lua.require'vqlsp'.statusline()}"
---
--- Commands: :VqlspStatus, :VqlspRestart; health: :checkhealth vqlsp.
local config = require('vqlsp.config')
local status = require('vqlsp.status')

local M = {}

M.name = 'vqlsp'
M.statusline = status.statusline

---@param opts? vqlsp.Options
function M.setup(opts)
  if vim.fn.has('nvim-0.11') == 0 then
    vim.notify('vqlsp needs Neovim >= 0.11 (vim.lsp.config / vim.lsp.enable)', vim.log.levels.ERROR)
    return
  end
  config.options = config.resolve(opts)
  vim.lsp.config(M.name, config.lsp_config(config.options))
  vim.lsp.enable(M.name)
end

---@param bufnr? integer
---@return vim.lsp.Client[]
function M.clients(bufnr)
  return vim.lsp.get_clients({ name = M.name, bufnr = bufnr })
end

--- Sends new server settings (camelCase) to running servers and keeps them for restarts.
---@param settings table
function M.update_settings(settings)
  config.options.settings = settings
  vim.lsp.config(M.name, config.lsp_config(config.options))
  for _, client in ipairs(M.clients()) do
    client.settings = { vqlsp = settings }
    client:notify('workspace/didChangeConfiguration', { settings = client.settings })
  end
end

--- The cursor of a window as an LSP position in the client's encoding.
---@param client vim.lsp.Client
---@param win? integer (default: the current window)
---@return { line: integer, character: integer }
function M.cursor_position(client, win)
  return vim.lsp.util.make_position_params(win or 0, client.offset_encoding).position
end

--- Asks the server for the compute stats of a buffer (`vqlsp.documentStats`); with `position`
--- (`'cursor'`: the current window's cursor, or an LSP position), the server also reports the
--- compute of the sentence there (`computeAtCursor`).
---@param bufnr integer
---@param callback fun(err: table|nil, stats: table|nil)
---@param position? 'cursor'|{ line: integer, character: integer }
function M.document_stats(bufnr, callback, position)
  local client = M.clients(bufnr)[1]
  if not client then
    callback({ message = 'vqlsp is not attached to this buffer' }, nil)
    return
  end
  local arguments = { vim.uri_from_bufnr(bufnr) }
  if position == 'cursor' then
    arguments[2] = M.cursor_position(client)
  elseif position then
    arguments[2] = position
  end
  client:request('workspace/executeCommand', {
    command = 'vqlsp.documentStats',
    arguments = arguments,
  }, function(err, result)
    callback(err, result)
  end, bufnr)
end

--- The compute of the sentence under the cursor against the document's mean, from
--- `computeAtCursor` and `compute` of the stats, e.g. 'this sentence: 4.00 layers recomputed
--- per token (document mean 0.50)'; nil when the cursor is on no sentence.
---@param stats table
---@return string|nil
function M.format_cursor_compute(stats)
  local mine, doc = stats.computeAtCursor, type(stats.compute) == 'table' and stats.compute or {}
  if type(mine) ~= 'table' or type(mine.rowsPerToken) ~= 'number' then
    return nil
  end
  local doc_rows = type(doc.rowsPerToken) == 'number' and string.format('%.2f', doc.rowsPerToken) or '?'
  local text
  if mine.lastUpdate == false then
    text = string.format('this sentence: none recomputed on the last update (document mean %s layers per token; '
      .. '%.2f when it was last computed)', doc_rows, mine.rowsPerToken)
  else
    text = string.format('this sentence: %.2f layers recomputed per token (document mean %s)', mine.rowsPerToken, doc_rows)
  end
  if type(mine.learnersPerRow) == 'number' then
    text = text .. string.format('; ACM learners per row %.2f', mine.learnersPerRow)
    if type(doc.learnersPerRow) == 'number' then
      text = text .. string.format(' (document %.2f)', doc.learnersPerRow)
    end
  end
  return text
end

--- Text of :VqlspStatus for a buffer's stats: the label, the sentence under the cursor, then
--- every field.
---@param stats table
---@return string
function M.format_stats(stats)
  local head, lines = {}, {}
  if stats.label then
    head[#head + 1] = string.format('vqlsp: %s', status.format(stats))
  end
  head[#head + 1] = M.format_cursor_compute(stats)
  for _, key in ipairs(vim.tbl_keys(stats)) do
    if key ~= 'label' then
      local value = stats[key]
      lines[#lines + 1] = string.format('  %s: %s', key, type(value) == 'table' and vim.json.encode(value) or tostring(value))
    end
  end
  table.sort(lines)
  return table.concat(vim.list_extend(head, lines), '\n')
end

--- :VqlspStatus (with the compute of the sentence under the cursor)
function M.show_status()
  local bufnr = vim.api.nvim_get_current_buf()
  if #M.clients(bufnr) == 0 then
    local running = #M.clients() > 0 and 'running, but not attached to this buffer' or 'not running'
    vim.notify('vqlsp: ' .. running .. ' (see :checkhealth vqlsp)', vim.log.levels.WARN)
    return
  end
  M.document_stats(bufnr, function(err, stats)
    if err or not stats then
      vim.notify('vqlsp: compute stats failed: ' .. (err and err.message or 'no result'), vim.log.levels.ERROR)
      return
    end
    vim.notify(M.format_stats(stats), vim.log.levels.INFO)
  end, 'cursor')
end

--- :VqlspRestart: stops the servers and starts new ones for the same buffers.
function M.restart()
  local buffers = {}
  for _, client in ipairs(M.clients()) do
    for bufnr in pairs(client.attached_buffers) do
      buffers[#buffers + 1] = bufnr
    end
  end
  vim.lsp.enable(M.name, false)
  local stopped = vim.wait(5000, function()
    return #M.clients() == 0
  end, 20)
  if not stopped then
    for _, client in ipairs(M.clients()) do
      client:stop(true)
    end
  end
  for _, bufnr in ipairs(buffers) do
    status.clear(bufnr)
  end
  vim.lsp.enable(M.name)
  -- vim.lsp.enable re-runs FileType only after VimEnter; start the same buffers either way.
  for _, bufnr in ipairs(buffers) do
    if vim.api.nvim_buf_is_loaded(bufnr) then
      vim.api.nvim_exec_autocmds('FileType', { group = 'nvim.lsp.enable', buffer = bufnr, modeline = false })
    end
  end
end

return M
