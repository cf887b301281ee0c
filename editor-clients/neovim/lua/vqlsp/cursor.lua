--- Tells the server where the cursor is, as VS Code does: a `textDocument/codeAction`
--- request for the cursor (its answer unused) once the cursor rests after a move in
--- normal mode. The server builds a long document's sections nearest the cursor first
--- and keeps the cursor's section's state, so the first keystroke there is an update,
--- not a full pass. (Moves in insert mode are edits: the server sees those already.)
local M = {}

--- Milliseconds the cursor must rest before the server is told (a held `j` sends one).
M.rest_ms = 150

local timers = {} ---@type table<integer, uv.uv_timer_t>

---@param bufnr integer
function M.detach(bufnr)
  local timer = timers[bufnr]
  if timer then
    timer:stop()
    timer:close()
    timers[bufnr] = nil
  end
  pcall(vim.api.nvim_del_augroup_by_name, 'vqlsp-cursor-' .. bufnr)
end

--- Sends the cursor of the window showing `bufnr` now (no wait).
---@param client vim.lsp.Client
---@param bufnr integer
function M.send(client, bufnr)
  local win = vim.fn.bufwinid(bufnr)
  if win == -1 or client:is_stopped() then
    return
  end
  local params = vim.lsp.util.make_range_params(win, client.offset_encoding)
  params.context = { diagnostics = {} }
  client:request('textDocument/codeAction', params, function() end, bufnr)
end

---@param client vim.lsp.Client
---@param bufnr integer
function M.attach(client, bufnr)
  M.detach(bufnr)
  local timer = assert(vim.uv.new_timer())
  timers[bufnr] = timer
  vim.api.nvim_create_autocmd('CursorMoved', {
    group = vim.api.nvim_create_augroup('vqlsp-cursor-' .. bufnr, { clear = true }),
    buffer = bufnr,
    callback = function()
      timer:stop()
      timer:start(M.rest_ms, 0, vim.schedule_wrap(function()
        if vim.api.nvim_buf_is_valid(bufnr) then
          M.send(client, bufnr)
        end
      end))
    end,
  })
end

return M
